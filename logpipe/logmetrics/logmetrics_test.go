package logmetrics

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flexgw/flexgw/ir/irlog"
	"github.com/flexgw/flexgw/logpipe"
)

func TestCollector(t *testing.T) {
	l := &irlog.Logging{Outputs: []irlog.LogOutput{{Name: "out", Type: "splunk",
		Parameters: map[string]string{"endpoint": "http://127.0.0.1:1", "splunk_token": "t"}}}, AccessLogOutputs: []string{"out"}}
	p, err := logpipe.New(l, logpipe.Options{QueueDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(t.Context())
	var lines strings.Builder
	for i := range 3 {
		fmt.Fprintf(&lines, `{"start_time":"2026-01-02T03:04:05Z","method":"GET","path":"/r/%d","response_code":200}`+"\n", i)
	}
	if _, err := p.IngestJSONLines([]byte(lines.String())); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(New(p))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		if l := m.GetLabel(); len(l) != 1 || l[0].GetName() != "exporter" || l[0].GetValue() != "out" {
			t.Errorf("%s labels %v", mf.GetName(), l)
		}
		got[mf.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	for name, want := range map[string]float64{
		"flexgw_logpipe_records_in_total": 3, "flexgw_logpipe_sent_total": 0, "flexgw_logpipe_retried_total": 0,
		"flexgw_logpipe_dropped_total": 0, "flexgw_logpipe_dead_lettered_total": 0, "flexgw_logpipe_queue_depth": 3,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if got["flexgw_logpipe_queue_bytes"] <= 0 {
		t.Errorf("queue bytes %v", got["flexgw_logpipe_queue_bytes"])
	}
}
