package flbplugin

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
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

// chunk is a Fluent Bit chunk of records id-<from>..id-<to-1>, padded so
// a few of them fill a small request.
func chunk(t *testing.T, from, to int) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	for i := from; i < to; i++ {
		if err := enc.Encode([]any{int64(1700000000), map[string]any{
			"request_id": "id-" + strconv.Itoa(i), "path": "/p", "pad": strings.Repeat("x", 200)}}); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// With Buffer fluentbit a flush returns OK only once the aggregator has
// every record; a request that keeps failing makes it return Retry, and
// the same chunk handed over again sends only what was not confirmed: no
// record twice, none lost.
func TestFlushBufferFluentBit(t *testing.T) {
	hec := exportertest.NewHEC("tok")
	defer hec.Close()
	inst, err := New(getter(map[string]string{"Exporter": "splunk", "Endpoint": hec.URL, "Token": "tok",
		"Queue_Dir": t.TempDir(), "Buffer": "fluentbit", "Retry_Window": "300ms", "Retry_Min": "10ms",
		"Param.max_body_bytes": "3000", "Param.compress": "none"}), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := inst.Close(); err != nil {
			t.Error(err)
		}
	}()
	if got := inst.Flush(chunk(t, 0, 60), "t"); got != OK {
		t.Fatalf("flush = %d, want OK", got)
	}
	if hec.Unique() != 60 {
		t.Fatalf("OK returned with %d of 60 records delivered", hec.Unique())
	}
	// The next two requests go through, every later one fails until the
	// fault is lifted.
	base := hec.Requests()
	hec.SetFault(func(n int) exportertest.Fault {
		if n > base+2 {
			return exportertest.Fault{Status: 503}
		}
		return exportertest.Fault{}
	})
	c := chunk(t, 60, 120)
	if got := inst.Flush(c, "t"); got != Retry {
		t.Fatalf("flush with failing requests = %d, want Retry", got)
	}
	if u := hec.Unique(); u <= 60 || u >= 120 {
		t.Fatalf("after a partly failed chunk the receiver has %d records, want some of the second chunk", u)
	}
	hec.SetFault(nil)
	if got := inst.Flush(c, "t"); got != OK {
		t.Fatalf("flush after recovery = %d, want OK", got)
	}
	if hec.Unique() != 120 {
		t.Fatalf("%d of 120 records delivered", hec.Unique())
	}
	for id, n := range hec.Counts() {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	if got := inst.Flush([]byte{0x92, 0x01}, "t"); got != Error {
		t.Fatalf("truncated chunk: %d", got)
	}
	st := inst.Stats()[0]
	if st.Sent != 120 || st.RecordsIn != 120 {
		t.Errorf("stats %+v, want 120 in and sent", st)
	}
	if _, err := os.Stat(filepath.Join(inst.p.DeadLetterPath("splunk"))); err == nil {
		t.Error("dead-letter file written")
	}
}

func TestNewRejectsBadBuffer(t *testing.T) {
	if inst, err := New(getter(map[string]string{"Exporter": "splunk", "Endpoint": "http://x", "Token": "t",
		"Queue_Dir": t.TempDir(), "Buffer": "memory"}), quiet); err == nil || !strings.Contains(err.Error(), "Buffer") {
		if inst != nil {
			_ = inst.Close()
		}
		t.Fatalf("Buffer memory: %v", err)
	}
}

// Closing the instance (Fluent Bit shutting down) ends a flush that waits
// for an aggregator that cannot be reached: the chunk goes back as Retry
// and stays in Fluent Bit's storage.
func TestCloseEndsWaitingFlush(t *testing.T) {
	hec := exportertest.NewHEC("tok")
	url := hec.URL
	hec.Close() // nothing listens there now
	inst, err := New(getter(map[string]string{"Exporter": "splunk", "Endpoint": url, "Token": "tok",
		"Queue_Dir": t.TempDir(), "Buffer": "fluentbit", "Retry_Window": "1h"}), quiet)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 1)
	c := chunk(t, 0, 10)
	go func() { got <- inst.Flush(c, "t") }()
	if err := inst.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if code := <-got; code != Retry {
		t.Fatalf("flush = %d, want Retry", code)
	}
}
