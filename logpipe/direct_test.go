package logpipe

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/exporters/exportertest"
	"github.com/flexgw/flexgw/ir/irlog"
)

// A Direct pipeline with two outputs: when one cannot deliver, the chunk
// comes back (ErrPending) and, handed over again, goes only where it is
// still pending — each aggregator gets every record once, and nothing is
// written to disk but the directory.
func TestDeliverMsgpackTwoOutputs(t *testing.T) {
	ok, flaky := exportertest.NewHEC("tok"), exportertest.NewHEC("tok")
	defer ok.Close()
	defer flaky.Close()
	flaky.SetFault(func(int) exportertest.Fault { return exportertest.Fault{Status: 503} })
	l := &irlog.Logging{Outputs: []irlog.LogOutput{
		{Name: "a", Type: "splunk", Parameters: map[string]string{"endpoint": ok.URL, "splunk_token": "tok", "max_body_bytes": "2000"}},
		{Name: "b", Type: "splunk", Parameters: map[string]string{"endpoint": flaky.URL, "splunk_token": "tok", "max_body_bytes": "2000"}},
	}}
	dir := t.TempDir()
	opts := quietOptions(dir)
	opts.Direct = true
	opts.Retry = RetryOptions{Min: time.Millisecond, Window: 50 * time.Millisecond}
	p, err := New(l, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	for i := range 40 {
		recs = append(recs, map[string]any{"request_id": fmt.Sprintf("r-%d", i), "path": "/p", "pad": strings.Repeat("y", 100)})
	}
	c := chunk(t, 2, false, recs...)
	if err := p.DeliverMsgpack(c); !errors.Is(err, ErrPending) {
		t.Fatalf("with output b failing: %v, want ErrPending", err)
	}
	if ok.Unique() != 40 || flaky.Unique() != 0 {
		t.Fatalf("a has %d, b %d; want 40 and 0", ok.Unique(), flaky.Unique())
	}
	flaky.SetFault(nil)
	if err := p.DeliverMsgpack(c); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*exportertest.HEC{"a": ok, "b": flaky} {
		if r.Unique() != 40 {
			t.Errorf("%s has %d of 40", name, r.Unique())
		}
		for id, n := range r.Counts() {
			if n != 1 {
				t.Errorf("%s: %s delivered %d times", name, id, n)
			}
		}
	}
	if wal, _ := filepath.Glob(filepath.Join(dir, "*", "*.wal")); len(wal) > 0 {
		t.Errorf("queue segments written: %v", wal)
	}
	if err := p.IngestMsgpack(c); err == nil || !strings.Contains(err.Error(), "no durable queue") {
		t.Errorf("IngestMsgpack on a Direct pipeline: %v", err)
	}
}
