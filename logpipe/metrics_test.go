package logpipe

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestCollector(t *testing.T) {
	p, err := New(logging("out", "splunk", map[string]string{"endpoint": "http://127.0.0.1:1", "splunk_token": "t"}), testOptions(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(t.Context())
	if _, err := p.IngestJSONLines(lines(0, 3)); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p.Collector())
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
