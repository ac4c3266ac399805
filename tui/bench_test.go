package tui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	uv "github.com/charmbracelet/ultraviolet"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/observe"
	"github.com/flexgw/flexgw/stats"
	"github.com/flexgw/flexgw/stats/topapi"
)

// snapshot1000 is a /api/v1/top body for 50 APIs × 20 routes, every route
// with traffic, as the agent encodes it for the given routes query.
func snapshot1000(b *testing.B, routes ...string) []byte {
	b.Helper()
	s := stats1000()
	_, spark := apiColumns(200, 0)
	body, err := json.Marshal(s.Top(stats.TopQuery{History: spark, Routes: routes}))
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// stats1000 is an agent whose last complete second saw five requests to
// each of 1,000 routes in 50 APIs; its clock stays in the next second.
func stats1000() *stats.Stats {
	at := time.Now().Truncate(time.Second)
	var now atomic.Pointer[time.Time]
	now.Store(&at)
	s := stats.New(stats.Options{Now: func() time.Time { return *now.Load() }})
	h := s.Hooks()
	for i := range 1000 {
		for j := range 5 {
			_, done := h.Request(context.Background(), observe.RequestInfo{API: fmt.Sprintf("default/api-%02d", i/20), Route: fmt.Sprintf("route-%04d", i)})
			done(&accesslog.Record{ResponseCode: 200 + 100*(j%4)}, observe.Timings{Total: time.Duration(i+j) * 10 * time.Microsecond, Service: "default/svc"})
		}
	}
	next := at.Add(time.Second + 500*time.Millisecond)
	now.Store(&next)
	return s
}

// cpuTime is this process's user+system CPU time. The machine running the
// benchmarks is shared, so wall time per op overstates the cost; CPU time
// is what "percent of a core" means.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchRefresh measures the TUI's work for a new snapshot: decode it,
// rebuild the sorted table and render one frame at 200x50. The agent's
// snapshot changes once a second (twice with every API expanded, when the
// rows on screen change), whatever the refresh interval: the refreshes in
// between are 304s (BenchmarkRefreshNotModified).
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
	b.ReportMetric(float64(cpuTime()-start)/float64(n)/1e6, "cpu-ms/snapshot")
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

// BenchmarkRefreshNotModified is one refresh the agent answers with 304
// (nine in ten at a 100 ms refresh): the request over a real socket, the
// agent's cached answer (same process, so its CPU is counted too) and the
// model keeping its frame. The agent's clock stands still here.
func BenchmarkRefreshNotModified(b *testing.B) {
	srv := httptest.NewServer(stats1000().Handler())
	defer srv.Close()
	c, err := newClient(srv.URL, "")
	if err != nil {
		b.Fatal(err)
	}
	m := newModel(context.Background(), c.top, srv.URL, 100*time.Millisecond, false)
	m.Update(tea.WindowSizeMsg{Width: 200, Height: 50})
	m.Update(m.Init()())
	_ = m.View()
	b.ReportAllocs()
	start, n, built := cpuTime(), 0, m.frames
	for b.Loop() {
		m.Update(m.updateCmd(tickMsg{})())
		_ = m.View()
		n++
	}
	if m.frames != built {
		b.Errorf("%d frames built in %d refreshes of an unchanged snapshot", m.frames-built, n)
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(n)/1e3, "cpu-us/refresh")
}

// repainter is what bubbletea's renderer does with each new frame: parse
// it into a cell buffer and diff that against the screen, writing the
// changes (the ultraviolet calls of its flush, minus locking and modes).
type repainter struct {
	buf uv.ScreenBuffer
	scr *uv.TerminalRenderer
	out bytes.Buffer
}

func newRepainter(w, h int) *repainter {
	r := &repainter{buf: uv.NewScreenBuffer(w, h)}
	r.scr = uv.NewTerminalRenderer(&r.out, []string{"TERM=xterm-256color"})
	r.scr.SetColorProfile(colorprofile.ANSI256)
	r.scr.SetFullscreen(true)
	r.scr.SetScrollOptim(true)
	r.scr.Resize(w, h)
	return r
}

func (r *repainter) paint(frame string) int {
	r.buf.Clear()
	uv.NewStyledString(frame).Draw(r.buf, r.buf.Bounds())
	r.scr.Render(r.buf.RenderBuffer)
	_ = r.scr.Flush()
	n := r.out.Len()
	r.out.Reset()
	return n
}

// BenchmarkRepaintLogs is one batch of 50 log records on screen: the
// frame built and repainted by the terminal renderer at 200x50. The Logs
// view gets four batches a second from a busy gateway.
func BenchmarkRepaintLogs(b *testing.B) {
	m := newModel(context.Background(), nil, adminLabel, 100*time.Millisecond, false)
	m.Update(tea.WindowSizeMsg{Width: 200, Height: 50})
	m.view, m.streamOn = viewLogs, true
	r := newRepainter(200, 50)
	seq, written := 0, 0
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		recs := make([]logRecord, logBatchLimit)
		for i := range recs {
			seq++
			code := 200
			switch {
			case seq%10 == 0:
				code = 503
			case seq%7 == 0:
				code = 404
			}
			recs[i] = logRecord{StartTime: time.Unix(int64(seq), 0), Method: "GET", Path: fmt.Sprintf("/orders/%d", seq*7919%1000),
				ResponseCode: code, DurationMs: int64(seq % 17), API: "default/orders", Route: "orders-3", UpstreamHost: "10.0.0.10:8080"}
		}
		m.Update(logsMsg{recs: recs, gen: 1})
		written += r.paint(m.View().Content)
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N)/1e6, "cpu-ms/batch")
	b.ReportMetric(float64(written)/float64(b.N), "terminal-bytes/batch")
}

// BenchmarkRepaintAPIs is one new snapshot of 50 APIs on screen, built and
// repainted by the terminal renderer at 200x50 (every rate changed).
func BenchmarkRepaintAPIs(b *testing.B) {
	bodies := [][]byte{snapshot1000(b), snapshot1000(b)}
	m := newModel(context.Background(), nil, adminLabel, 100*time.Millisecond, false)
	m.Update(tea.WindowSizeMsg{Width: 200, Height: 50})
	tops := make([]*topapi.Top, len(bodies))
	for i, body := range bodies {
		tops[i] = new(topapi.Top)
		if err := json.Unmarshal(body, tops[i]); err != nil {
			b.Fatal(err)
		}
		// Different numbers in each, as from one second to the next.
		for j := range tops[i].APIs {
			tops[i].APIs[j].RPS += float64(i)
		}
	}
	r := newRepainter(200, 50)
	written := 0
	b.ReportAllocs()
	start := cpuTime()
	for i := 0; b.Loop(); i++ {
		m.Update(topMsg{top: tops[i%2]})
		written += r.paint(m.View().Content)
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N)/1e6, "cpu-ms/snapshot")
	b.ReportMetric(float64(written)/float64(b.N), "terminal-bytes/snapshot")
}
