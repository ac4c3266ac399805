package tui

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/observe"
	"github.com/flexgw/flexgw/stats"
	"github.com/flexgw/flexgw/stats/topapi"
	"github.com/flexgw/flexgw/telemetry/metrics"
	"github.com/flexgw/flexgw/tui/tuitest"
)

// TestUnmatchedHasOneName: a request no API served carries one name in
// the metrics (api and route labels), the APIs tab and the Logs view.
func TestUnmatchedHasOneName(t *testing.T) {
	s, url := liveStats(t)
	reg := prometheus.NewRegistry()
	met := metrics.New(reg, metrics.Options{})
	func() {
		defer s.clock.add(time.Second)
		rec := &accesslog.Record{StartTime: time.Now(), Method: "GET", Path: "/nowhere", ResponseCode: 404}
		for _, h := range []observe.Hooks{s.Hooks(), met.Hooks()} {
			_, done := h.Request(context.Background(), observe.RequestInfo{Method: "GET"})
			done(rec, observe.Timings{Total: time.Millisecond})
		}
		s.Write(rec)
	}()

	const name = accesslog.Unmatched
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		if mf.GetName() != "flexgw_requests_total" {
			continue
		}
		series = len(mf.GetMetric())
		for _, lp := range mf.GetMetric()[0].GetLabel() {
			if (lp.GetName() == "api" || lp.GetName() == "route") && lp.GetValue() != name {
				t.Errorf("metrics: %s=%q, want %q", lp.GetName(), lp.GetValue(), name)
			}
		}
	}
	if series != 1 {
		t.Fatalf("flexgw_requests_total has %d series, want 1", series)
	}

	var out strings.Builder
	if err := Run(t.Context(), Options{AdminURL: url, Once: true, Out: &out}); err != nil {
		t.Fatal(err)
	}
	if _, ok := tuitest.APIRPS(out.String(), name); !ok {
		t.Errorf("APIs tab has no %q row:\n%s", name, out.String())
	}
	if u := s.Top(stats.TopQuery{}); !hasAPI(u.APIs, name) {
		t.Errorf("/api/v1/top has no API %q", name)
	}

	m := fixtureModel(t)
	press(m, "3")
	m.Update(logsMsg{recs: []logRecord{{StartTime: fixedNow, Method: "GET", Path: "/nowhere", ResponseCode: 404}}, reset: true, gen: 2})
	frame := plainFrame(m)
	line := ""
	for l := range strings.SplitSeq(frame, "\n") {
		if strings.Contains(l, "/nowhere") {
			line = l
		}
	}
	if strings.Count(line, name) != 2 {
		t.Errorf("Logs view row of an unmatched request = %q, want API and route %q", line, name)
	}
	// "a" (this API) on it keeps unmatched records, asking the server for them.
	press(m, "a")
	if m.logs.api != name || !strings.Contains(m.logs.serverQuery(), "api="+name) {
		t.Errorf("a on an unmatched record: filter %q, query %q", m.logs.api, m.logs.serverQuery())
	}
	if !strings.Contains(plainFrame(m), "/nowhere") {
		t.Errorf("the unmatched record is filtered out by its own API filter:\n%s", plainFrame(m))
	}
	f := stats.LogFilter{API: name}
	if !f.Match(&accesslog.Record{Path: "/nowhere"}) || f.Match(&accesslog.Record{APIInstance: "default/orders"}) {
		t.Error("the server's api=unmatched filter does not keep exactly the unmatched records")
	}
}

func hasAPI(apis []topapi.API, name string) bool {
	for _, a := range apis {
		if a.Name == name {
			return true
		}
	}
	return false
}
