package flbplugin

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/flexgw/flexgw/exporters/exportertest"
)

func getter(m map[string]string) Getter {
	return func(k string) string {
		for mk, v := range m {
			if strings.EqualFold(mk, k) {
				return v
			}
		}
		return ""
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestNewRejectsBadKeys(t *testing.T) {
	dir := t.TempDir()
	for _, m := range []map[string]string{
		{"Exporter": "kafka", "Endpoint": "http://x", "Queue_Dir": dir},
		{"Exporter": "splunk", "Token": "t", "Queue_Dir": dir},
		{"Exporter": "splunk", "Endpoint": "http://x", "Token": "t"},
		{"Exporter": "splunk", "Endpoint": "http://x", "Token": "t", "Queue_Dir": dir, "Flush_Interval": "soon"},
		{"Exporter": "splunk", "Endpoint": "http://x", "Token": "t", "Queue_Dir": dir, "Param.compress": "zstd"},
	} {
		if inst, err := New(getter(m), quiet); err == nil {
			_ = inst.Close()
			t.Errorf("%v accepted", m)
		}
	}
}

func TestFlushCodes(t *testing.T) {
	nr := exportertest.NewNewRelic("lic")
	defer nr.Close()
	inst, err := New(getter(map[string]string{"Exporter": "nrlogs", "Endpoint": nr.URL + "/log/v1", "Token": "lic",
		"Queue_Dir": t.TempDir(), "Flush_Interval": "10ms", "Queue_Max_Bytes": "200000", "Drain_Timeout": "1m"}), quiet)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	for i := 0; i < 50; i++ {
		_ = enc.Encode([]any{int64(1700000000), map[string]any{"request_id": "id-" + string(rune('a'+i%26)) + string(rune('a'+i/26))}})
	}
	if got := inst.Flush(buf.Bytes(), "t"); got != OK {
		t.Fatalf("flush = %d", got)
	}
	if got := inst.Flush([]byte{0x92, 0x01}, "t"); got != Error {
		t.Fatalf("truncated chunk: %d", got)
	}
	if !nr.WaitUnique(50, time.Minute) {
		t.Fatalf("%d arrived", nr.Unique())
	}
	// The aggregator goes away; the queue fills; Fluent Bit is told to retry.
	nr.SetFault(func(int) exportertest.Fault { return exportertest.Fault{Status: 503} })
	big := bytes.Repeat(buf.Bytes(), 200)
	code := OK
	for i := 0; i < 50 && code == OK; i++ {
		code = inst.Flush(big, "t")
	}
	if code != Retry {
		t.Fatalf("full queue: flush = %d, want Retry", code)
	}
	done := make(chan error, 1)
	go func() { done <- inst.Close() }()
	nr.SetFault(nil)
	if err := <-done; err != nil {
		t.Fatalf("drain: %v", err)
	}
}
