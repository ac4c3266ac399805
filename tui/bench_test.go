package tui

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/dataplane"
	"github.com/flexgw/flexgw/stats"
	"github.com/flexgw/flexgw/stats/topapi"
)

// snapshot1000 is a /api/v1/top body for 50 APIs × 20 routes, every route
// with traffic, as the agent encodes it for the given routes query.
func snapshot1000(b *testing.B, routes ...string) []byte {
	b.Helper()
	s := stats.New(stats.Options{})
	h := s.Hooks()
	for i := range 1000 {
		for j := range 5 {
			_, done := h.Request(context.Background(), dataplane.RequestInfo{API: fmt.Sprintf("default/api-%02d", i/20), Route: fmt.Sprintf("route-%04d", i)})
			done(&accesslog.Record{ResponseCode: 200 + 100*(j%4)}, dataplane.Timings{Total: time.Duration(i+j) * 10 * time.Microsecond, Service: "default/svc"})
		}
	}
	_, spark := apiColumns(200)
	body, err := json.Marshal(s.Top(stats.TopQuery{History: spark, Routes: routes}))
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// cpuTime is this process's user+system CPU time. The machine running the
// benchmarks is shared, so wall time per op overstates the cost; CPU time
// is what "percent of a core" means.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchRefresh measures the TUI's work per refresh: decode the snapshot,
// rebuild the sorted table and render one frame at 200x50. It reports CPU
// ms per refresh and the share of a core that costs at a 100 ms refresh.
func benchRefresh(b *testing.B, body []byte, expand []string, prime []byte) {
	m := newModel(context.Background(), nil, adminLabel, 100*time.Millisecond, false)
	m.Update(tea.WindowSizeMsg{Width: 200, Height: 50})
	for _, a := range expand {
		m.apis.expanded[a] = true
	}
	if prime != nil {
		// A session that has scrolled through everything: every API's
		// routes cached and re-sorted on each refresh.
		var t topapi.Top
		if err := json.Unmarshal(prime, &t); err != nil {
			b.Fatal(err)
		}
		m.Update(topMsg{top: &t})
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	start, n := cpuTime(), 0
	for b.Loop() {
		var t topapi.Top
		if err := json.Unmarshal(body, &t); err != nil {
			b.Fatal(err)
		}
		m.Update(topMsg{top: &t})
		_ = m.View()
		n++
	}
	per := float64(cpuTime()-start) / float64(n) / 1e6
	b.ReportMetric(per, "cpu-ms/refresh")
	b.ReportMetric(per/100*100, "%core@100ms")
}

// BenchmarkRefresh1000Routes: 1,000 routes in 50 APIs, one API expanded
// (the agent then sends that API's 20 routes).
func BenchmarkRefresh1000Routes(b *testing.B) {
	benchRefresh(b, snapshot1000(b, "default/api-00"), []string{"default/api-00"}, nil)
}

// BenchmarkRefresh1000RoutesAllExpanded: every API expanded. The TUI asks
// for the routes of the APIs on screen (two or three at 50 rows), which
// is what the agent then sends.
func BenchmarkRefresh1000RoutesAllExpanded(b *testing.B) {
	var all []string
	for i := range 50 {
		all = append(all, fmt.Sprintf("default/api-%02d", i))
	}
	benchRefresh(b, snapshot1000(b, "default/api-00", "default/api-01", "default/api-02"), all, snapshot1000(b, stats.AllRoutes))
}

// BenchmarkRefresh1000RoutesEveryRoute is the bound if every snapshot
// carried all 1,000 routes (what --once and --plain fetch, once per frame).
func BenchmarkRefresh1000RoutesEveryRoute(b *testing.B) {
	var all []string
	for i := range 50 {
		all = append(all, fmt.Sprintf("default/api-%02d", i))
	}
	benchRefresh(b, snapshot1000(b, stats.AllRoutes), all, nil)
}

// BenchmarkFrame1000Routes is one frame render (View) of the APIs table
// with 1,000 routes expanded, at 200x50.
func BenchmarkFrame1000Routes(b *testing.B) {
	m := newModel(context.Background(), nil, adminLabel, 100*time.Millisecond, false)
	m.Update(tea.WindowSizeMsg{Width: 200, Height: 50})
	var t topapi.Top
	if err := json.Unmarshal(snapshot1000(b, stats.AllRoutes), &t); err != nil {
		b.Fatal(err)
	}
	for _, a := range t.APIs {
		m.apis.expanded[a.Name] = true
	}
	m.Update(topMsg{top: &t})
	b.ReportAllocs()
	start, n := cpuTime(), 0
	for b.Loop() {
		m.cached = "" // render, not the cache
		_ = m.View()
		n++
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(n)/1e6, "cpu-ms/frame")
}
