package tui

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/observe"
	"github.com/flexgw/flexgw/stats"
	"github.com/flexgw/flexgw/tui/tuitest"
)

// testClock is the agent's clock in these tests: traffic moves it on a
// second so the agent's window (complete seconds only) counts it at once.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// liveGateway is the agent side of these tests: a Stats and its clock.
type liveGateway struct {
	*stats.Stats
	clock *testClock
}

// liveStats is the agent side: a Stats fed with traffic through the same
// hooks and sink the data plane uses, served on a real admin socket.
func liveStats(t *testing.T) (*liveGateway, string) {
	t.Helper()
	snap := &ir.Snapshot{
		Version: 3,
		Listeners: []*ir.Listener{{Name: "http_0.0.0.0_8081", APIs: []*ir.API{
			{Name: "orders", Namespace: "default", BasePath: "/orders", Routes: []*ir.Route{{Name: "orders-0", Destinations: []ir.Destination{{Service: "default/backend"}}}}},
			{Name: "idle", Namespace: "default", BasePath: "/idle", Routes: []*ir.Route{{Name: "idle-0"}}},
		}}},
		Services: []*ir.Service{{Name: "backend", Namespace: "default", Endpoints: []ir.Endpoint{{Host: "127.0.0.1", Port: 9}}}},
	}
	clk := &testClock{t: time.Now()}
	s := stats.New(stats.Options{
		Now:      clk.now,
		Snapshot: func() *ir.Snapshot { return snap },
		Status: func() stats.Status {
			return stats.Status{GatewayID: "gw-e2e", Version: "test", DataPlane: "builtin", SnapshotVersion: 3, ReloadOK: true}
		},
	})
	addr := serve(t, "127.0.0.1:0", s.Handler())
	return &liveGateway{s, clk}, "http://" + addr
}

// serve runs h on addr until the test ends and returns the bound address.
func serve(t *testing.T, addr string, h http.Handler) string {
	t.Helper()
	var ln net.Listener
	var err error
	// Re-binding a just-closed port can briefly fail; retry until it works.
	waitFor(t, "listen on "+addr, func() bool {
		ln, err = net.Listen("tcp", addr)
		return err == nil
	})
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	servers[ln.Addr().String()] = srv
	return ln.Addr().String()
}

// servers lets a test stop the admin server it started.
var servers = map[string]*http.Server{}

// traffic sends n requests through the hooks and the access-log sink, then
// completes their second.
func traffic(s *liveGateway, n int, status int) {
	defer s.clock.add(time.Second)
	h := s.Hooks()
	for i := range n {
		_, done := h.Request(context.Background(), observe.RequestInfo{API: "default/orders", Route: "orders-0", Method: "GET"})
		rec := &accesslog.Record{StartTime: time.Now(), Method: "GET", Path: "/orders/" + string(rune('a'+i%26)), ResponseCode: status, APIInstance: "default/orders", Route: "orders-0", TraceID: "trace-e2e"}
		done(rec, observe.Timings{Total: 3 * time.Millisecond, Upstream: 2 * time.Millisecond, Service: "default/backend"})
		s.Write(rec)
	}
}

func TestOnceAgainstLiveStats(t *testing.T) {
	s, url := liveStats(t)
	traffic(s, 200, 200)
	var out strings.Builder
	if err := Run(t.Context(), Options{AdminURL: url, Once: true, Out: &out}); err != nil {
		t.Fatal(err)
	}
	frame := out.String()
	if rps, ok := tuitest.APIRPS(frame, "default/orders"); !ok || rps <= 0 {
		t.Errorf("--once shows default/orders at %v rps (found=%v), want > 0:\n%s", rps, ok, frame)
	}
	if rps, ok := tuitest.APIRPS(frame, "default/idle"); !ok || rps != 0 {
		t.Errorf("idle API: rps=%v found=%v", rps, ok)
	}
	for _, want := range []string{"gw-e2e", "snapshot v3", "route orders-0", "default/backend", "127.0.0.1:9", "eBPF probe off"} {
		if !strings.Contains(frame, want) {
			t.Errorf("--once frame lacks %q:\n%s", want, frame)
		}
	}
}

func TestOnceGatewayDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	err = Run(t.Context(), Options{AdminURL: addr, Once: true, Out: &strings.Builder{}})
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Errorf("err = %v, want one naming %s", err, addr)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLogStreamAndReconnect(t *testing.T) {
	s, url := liveStats(t)
	c, err := newClient(url, "")
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan any, 1000)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go c.streamLogs(ctx, 1, "", 50*time.Millisecond, func(m any) { msgs <- m })

	m := newModel(ctx, c.top, url, 50*time.Millisecond, false)
	// Pump the stream into the model as the program would.
	pump := func(until func() bool) {
		deadline := time.After(20 * time.Second)
		for !until() {
			select {
			case msg := <-msgs:
				m.Update(msg)
			case <-deadline:
				t.Fatalf("timed out; frame:\n%s", plainFrame(m))
			case <-time.After(20 * time.Millisecond):
				traffic(s, 1, 502)
			}
		}
	}
	pump(func() bool { return len(m.logs.recs) > 0 })
	if r := m.logs.recs[0]; r.ResponseCode != 502 || r.TraceID != "trace-e2e" {
		t.Errorf("streamed record = %+v", r)
	}
	run(t, m, m.Init())
	if m.err != nil || m.top == nil {
		t.Fatalf("first fetch: %v", m.err)
	}

	// The gateway goes away: the header says so.
	addr := strings.TrimPrefix(url, "http://")
	servers[addr].Close()
	run(t, m, m.fetchCmd())
	// Usually "unreachable" (connection refused); a reused connection may
	// report its reset instead: either way the header says so.
	if f := plainFrame(m); m.err == nil || !strings.Contains(f, "reconnecting") || !strings.Contains(f, "gateway ") {
		t.Fatalf("after the gateway stopped, frame:\n%s", plainFrame(m))
	}
	pump(func() bool { return m.stream.err != nil })

	// It comes back on the same address: the TUI reconnects by itself.
	serve(t, addr, s.Handler())
	run(t, m, m.fetchCmd())
	if m.err != nil {
		t.Fatalf("fetch after restart: %v", m.err)
	}
	pump(func() bool { return m.streamOn })
	if strings.Contains(plainFrame(m), "unreachable") {
		t.Errorf("still unreachable after reconnect:\n%s", plainFrame(m))
	}
}

func TestExpandFetchesOnlyVisibleRoutes(t *testing.T) {
	s, url := liveStats(t)
	traffic(s, 10, 200)
	c, err := newClient(url, "")
	if err != nil {
		t.Fatal(err)
	}
	m := newModel(t.Context(), c.top, url, time.Second, false)
	run(t, m, m.Init())
	for _, a := range m.top.APIs {
		if a.Routes != nil || a.RouteCount != 1 {
			t.Errorf("collapsed API %s: routes=%v count=%d; want no routes and a count", a.Name, a.Routes, a.RouteCount)
		}
	}
	for i, r := range m.apis.rows {
		if r.name == "default/orders" {
			m.apis.cursor = i
		}
	}
	run(t, m, press(m, "space"))
	var found bool
	for _, r := range m.apis.rows {
		if r.kind == rowRoute && r.name == "orders-0" && r.rates.RPS > 0 {
			found = true
		}
	}
	if !found {
		t.Errorf("expanding default/orders did not fetch its routes; rows: %+v", m.apis.rows)
	}
	// Scrolled out of view (a one-line body), the API keeps its cached
	// routes and the query stops asking for them.
	m.Update(tea.WindowSizeMsg{Width: 120, Height: headerLines + 2})
	m.apis.cursor = len(m.apis.rows) - 1
	_ = m.View()
	if q := m.apis.visibleExpanded(m.bodyHeight()); len(q) != 0 {
		t.Errorf("routes query with the API off screen = %v, want none", q)
	}
	run(t, m, m.fetchCmd())
	if n := len(m.apis.rows); n < 4 {
		t.Errorf("off-screen expanded API lost its cached rows: %d rows", n)
	}
}

// testutil.SyncBuffer is a goroutine-safe strings.Builder.
func TestPlainModeFramesUntilCancelled(t *testing.T) {
	s, url := liveStats(t)
	traffic(s, 20, 200)
	var out testutil.SyncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{AdminURL: url, Plain: true, Refresh: 20 * time.Millisecond, Out: &out})
	}()
	waitFor(t, "two plain frames", func() bool { return strings.Count(out.String(), "\n--- ") >= 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	text := out.String()
	if strings.Contains(text, "\x1b") {
		t.Error("plain mode wrote escape sequences")
	}
	if rps, ok := tuitest.APIRPS(text, "default/orders"); !ok || rps <= 0 {
		t.Errorf("plain frame lacks default/orders with traffic:\n%s", text)
	}
}

func TestFollowLogsOnlyInLogsViewWithServerFilters(t *testing.T) {
	s, url := liveStats(t)
	c, err := newClient(url, "")
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan any, 1000)
	m := newModel(t.Context(), c.top, url, time.Second, false)
	m.follow = c.followLogs(t.Context(), 50*time.Millisecond, func(msg any) { msgs <- msg })
	pump := func(what string, until func() bool) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for !until() {
			select {
			case msg := <-msgs:
				m.Update(msg)
			case <-deadline:
				t.Fatalf("timed out waiting for %s; frame:\n%s", what, plainFrame(m))
			case <-time.After(20 * time.Millisecond):
				traffic(s, 1, 200)
				traffic(s, 1, 502)
			}
		}
	}
	if m.following {
		t.Fatal("following logs outside the Logs view")
	}
	press(m, "3")
	pump("records of both kinds", func() bool {
		var ok, fail bool
		for _, r := range m.logs.recs {
			ok = ok || r.ResponseCode == 200
			fail = fail || r.ResponseCode == 502
		}
		return ok && fail
	})
	// e moves the status filter to the server: after the reconnect only
	// 5xx records arrive.
	press(m, "e")
	gen := m.logs.gen
	pump("the filtered reconnect", func() bool { return m.logs.gen > gen && len(m.logs.recs) > 3 })
	for _, r := range m.logs.recs {
		if r.ResponseCode != 502 {
			t.Fatalf("status=500 stream delivered %d", r.ResponseCode)
		}
	}
	press(m, "1")
	if m.following || m.streamOn {
		t.Error("still following after leaving the Logs view")
	}
	waitFor(t, "the stream to close on the server", func() bool {
		return s.Top(stats.TopQuery{}).Header.LogSubscribers == 0
	})
}

func TestTokenIsSent(t *testing.T) {
	s := stats.New(stats.Options{Token: "s3cret"})
	addr := serve(t, "127.0.0.1:0", s.Handler())
	var out strings.Builder
	if err := Run(t.Context(), Options{AdminURL: addr, Token: "s3cret", Once: true, Out: &out}); err != nil {
		t.Fatalf("with the right token: %v", err)
	}
	err := Run(t.Context(), Options{AdminURL: addr, Token: "wrong", Once: true, Out: &out})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("with a wrong token: err = %v, want a 401", err)
	}
}
