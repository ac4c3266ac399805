package splunk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/exporters"
	"github.com/flexgw/flexgw/exporters/exportertest"
	"github.com/flexgw/flexgw/exporters/splunk"
)

func events(n, size int) []exporters.Event {
	out := make([]exporters.Event, n)
	pad := strings.Repeat("x", size)
	for i := range out {
		out[i] = exporters.Event{
			Time: time.UnixMilli(1700000000123 + int64(i)), Kind: exporters.Access, Message: []byte("GET / 200"),
			JSON: []byte(fmt.Sprintf(`{"request_id":"r%d","pad":%q}`, i, pad)),
		}
	}
	return out
}

func newSplunk(t *testing.T, hec *exportertest.HEC, extra map[string]string) *splunk.Splunk {
	t.Helper()
	p := map[string]string{"endpoint": hec.URL, "splunk_token": "tok", "event_index": "main", "event_sourcetype": "ignored", "event_field": "env prod"}
	for k, v := range extra {
		p[k] = v
	}
	x, err := splunk.New("s", p, exporters.Settings{Hostname: "gw1"})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestExportEnvelope(t *testing.T) {
	hec := exportertest.NewHEC("tok")
	defer hec.Close()
	hec.KeepBodies()
	x := newSplunk(t, hec, nil)
	if err := x.Export(context.Background(), events(10, 10)); err != nil {
		t.Fatal(err)
	}
	if got := hec.Unique(); got != 10 {
		t.Fatalf("received %d records, want 10", got)
	}
	if p := hec.Problems(); len(p) > 0 {
		t.Fatalf("protocol problems: %v", p)
	}
	first := strings.SplitN(string(hec.Bodies()[0]), "\n", 2)[0]
	var env map[string]any
	if err := json.Unmarshal([]byte(first), &env); err != nil {
		t.Fatal(err)
	}
	if env["time"] != 1700000000.123 || env["host"] != "gw1" || env["index"] != "main" || env["source"] != "flexgw" {
		t.Errorf("envelope = %v", env)
	}
	if f, _ := env["fields"].(map[string]any); f["env"] != "prod" {
		t.Errorf("fields = %v", env["fields"])
	}
}

func TestErrorsClassified(t *testing.T) {
	hec := exportertest.NewHEC("tok")
	defer hec.Close()
	tests := []struct {
		fault     exportertest.Fault
		status    int
		retryable bool
		after     time.Duration
	}{
		{exportertest.Fault{Status: 503, RetryAfter: "7"}, 503, true, 7 * time.Second},
		{exportertest.Fault{Status: 429}, 429, true, 0},
		{exportertest.Fault{Status: 400}, 400, false, 0},
		{exportertest.Fault{Drop: true}, 0, true, 0},
	}
	for _, tc := range tests {
		hec.SetFault(func(int) exportertest.Fault { return tc.fault })
		err := newSplunk(t, hec, nil).Export(context.Background(), events(1, 1))
		xe := exporters.AsError(err)
		if err == nil || xe.Status != tc.status || xe.Retryable != tc.retryable || xe.RetryAfter != tc.after {
			t.Errorf("fault %+v: err %v (status %d retryable %v after %v)", tc.fault, err, xe.Status, xe.Retryable, xe.RetryAfter)
		}
	}
	hec.SetFault(nil)
	x, err := splunk.New("s", map[string]string{"endpoint": hec.URL, "splunk_token": "wrong"}, exporters.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	err = x.Export(context.Background(), events(1, 1))
	if xe := exporters.AsError(err); xe.Status != http.StatusForbidden || xe.Retryable || !strings.Contains(string(xe.Body), "Invalid token") {
		t.Errorf("bad token: %v", err)
	}
}

func TestSplitsUnderMaxContentLength(t *testing.T) {
	hec := exportertest.NewHEC("tok")
	defer hec.Close()
	hec.MaxContentLength = 100_000
	x := newSplunk(t, hec, map[string]string{"max_body_bytes": "100000"})
	if err := x.Export(context.Background(), events(500, 1000)); err != nil {
		t.Fatal(err)
	}
	if hec.Unique() != 500 || hec.Requests() < 5 {
		t.Fatalf("unique %d in %d requests", hec.Unique(), hec.Requests())
	}
}

func TestIndexerAck(t *testing.T) {
	hec := exportertest.NewHEC("tok")
	defer hec.Close()
	hec.Ack = true
	hec.AckAfterPolls = 2
	x := newSplunk(t, hec, map[string]string{"indexer_ack": "On", "ack_poll_interval": "10ms"})
	if err := x.Export(context.Background(), events(5, 10)); err != nil {
		t.Fatal(err)
	}
	if hec.Unique() != 5 {
		t.Fatalf("unique %d", hec.Unique())
	}
	// Ack never arrives: the batch must not count as delivered.
	hec.AckAfterPolls = 1 << 30
	x = newSplunk(t, hec, map[string]string{"indexer_ack": "On", "ack_poll_interval": "10ms", "ack_timeout": "50ms"})
	err := x.Export(context.Background(), events(1, 1))
	if xe := exporters.AsError(err); err == nil || !xe.Retryable {
		t.Fatalf("unacked batch: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	for _, p := range []map[string]string{
		{"host": "h"},         // no token
		{"splunk_token": "t"}, // no host
		{"host": "h", "splunk_token": "t", "bogus": "1"},
		{"host": "h", "splunk_token": "t", "port": "99999"},
		{"host": "h", "splunk_token": "t", "tls": "maybe"},
		{"host": "h", "splunk_token": "t", "compress": "zstd"},
	} {
		if _, err := splunk.New("s", p, exporters.Settings{}); err == nil {
			t.Errorf("%v: no error", p)
		}
	}
	if _, err := splunk.New("s", map[string]string{"Host": "h", "Port": "8088", "Splunk_Token": "t", "TLS": "On", "tls.verify": "Off", "splunk_send_raw": "On"}, exporters.Settings{}); err != nil {
		t.Errorf("Flex example rejected: %v", err)
	}
}
