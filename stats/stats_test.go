package stats

import (
	"bufio"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/observe"
	"github.com/flexgw/flexgw/stats/topapi"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// request drives the hooks exactly as the data plane does.
func request(h observe.Hooks, api, route, svc string, status int, total, upstream time.Duration, outcome string) {
	_, done := h.Request(context.Background(), observe.RequestInfo{API: api, Route: route, Method: "GET"})
	rec := &accesslog.Record{ResponseCode: status, APIInstance: api, Route: route, PolicyOutcome: outcome}
	done(rec, observe.Timings{Total: total, Upstream: upstream, Service: svc})
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol*want }

func findAPI(t *testing.T, top *topapi.Top, name string) topapi.API {
	t.Helper()
	for _, a := range top.APIs {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("API %q not in snapshot (have %d APIs)", name, len(top.APIs))
	return topapi.API{}
}

func TestRatesAndPercentiles(t *testing.T) {
	c := newClock()
	s := New(Options{Now: c.now})
	h := s.Hooks()
	// Ten full seconds, 100 requests each: 90 fast 200s, 8 slow 404s
	// (policy-denied), 2 very slow 503s.
	for range 10 {
		for i := range 100 {
			switch {
			case i < 90:
				request(h, "ns/orders", "get", "ns/backend", 200, 10*time.Millisecond, 8*time.Millisecond, "allowed")
			case i < 98:
				request(h, "ns/orders", "get", "", 404, 2*time.Millisecond, 0, outcomeDenied)
			default:
				request(h, "ns/orders", "post", "ns/backend", 503, 400*time.Millisecond, 390*time.Millisecond, "")
			}
		}
		c.add(time.Second)
	}
	// Now the eleventh second has begun: the window is the ten complete
	// seconds of traffic.
	if a := findAPI(t, s.Top(TopQuery{}), "ns/orders"); a.Routes != nil || a.RouteCount != 2 {
		t.Errorf("default query: routes=%v count=%d, want none listed and a count of 2", a.Routes, a.RouteCount)
	}
	top := s.Top(TopQuery{History: 20, Routes: []string{"ns/orders"}})
	a := findAPI(t, top, "ns/orders")
	checks := []struct {
		name      string
		got, want float64
		tol       float64
	}{
		{"rps", a.RPS, 100, 0.01},
		{"2xx%", a.Pct2xx, 90, 0.001},
		{"4xx%", a.Pct4xx, 8, 0.001},
		{"5xx%", a.Pct5xx, 2, 0.001},
		{"err%", a.ErrorPct, 2, 0.001},
		{"p50", a.P50Ms, 10, 0.13},
		{"p95", a.P95Ms, 10, 0.13},
		{"p99", a.P99Ms, 400, 0.13},
		{"upstream p99", a.UpstreamP99Ms, 390, 0.13},
	}
	for _, c := range checks {
		if !near(c.got, c.want, c.tol) {
			t.Errorf("%s = %v, want %v (±%.0f%%)", c.name, c.got, c.want, c.tol*100)
		}
	}
	if a.Denials != 80 || a.DenialsTotal != 80 || a.Requests != 1000 || a.RequestsTotal != 1000 {
		t.Errorf("denials=%d/%d requests=%d/%d, want 80/80 1000/1000", a.Denials, a.DenialsTotal, a.Requests, a.RequestsTotal)
	}
	// Mean total = (90*10 + 8*2 + 2*400)/100 = 17.16 ms; upstream (90*8+2*390)/100 = 15.
	if !near(a.AvgUpstreamMs, 15, 0.001) || !near(a.AvgOverheadMs, 2.16, 0.001) {
		t.Errorf("avg upstream %v overhead %v, want 15 and 2.16", a.AvgUpstreamMs, a.AvgOverheadMs)
	}
	// The history ends at the last complete second, like the window: 10
	// idle seconds, then the 10 seconds of traffic.
	if len(a.RPSHistory) != 20 || a.RPSHistory[19] != 100 || a.RPSHistory[9] != 0 || a.RPSHistory[10] != 100 {
		t.Errorf("rps history = %v, want 10 zeros then 10×100", a.RPSHistory)
	}
	if p := a.P99History[15]; !near(p, 400, 0.13) {
		t.Errorf("p99 history point = %v, want ~400", p)
	}
	if len(a.Routes) != 2 {
		t.Fatalf("routes = %+v, want get and post", a.Routes)
	}
	for _, r := range a.Routes {
		if r.Name == "post" && (r.Requests != 20 || r.Pct5xx != 100) {
			t.Errorf("route post = %+v, want 20 requests all 5xx", r)
		}
		if len(r.RPSHistory) != 20 {
			t.Errorf("route %s history = %v, want 20 points like its API", r.Name, r.RPSHistory)
		}
	}
	if len(a.Services) != 1 || a.Services[0].Name != "ns/backend" || a.Services[0].Requests != 920 {
		t.Errorf("services = %+v, want ns/backend with 920 requests", a.Services)
	}
	if top.Header.Totals.Requests != 1000 || !near(top.Header.Totals.P99Ms, 400, 0.13) {
		t.Errorf("totals = %+v", top.Header.Totals)
	}

	// Drill-down adds route histories.
	d := findAPI(t, s.Top(TopQuery{History: 5, API: "ns/orders"}), "ns/orders")
	for _, r := range d.Routes {
		if len(r.RPSHistory) != 5 {
			t.Errorf("drill-down route %s history = %v", r.Name, r.RPSHistory)
		}
	}

	// A minute later the window is empty but totals and history remain.
	c.add(time.Minute)
	a = findAPI(t, s.Top(TopQuery{History: 120}), "ns/orders")
	if a.RPS != 0 || a.Requests != 0 || a.RequestsTotal != 1000 || a.DenialsTotal != 80 {
		t.Errorf("after a minute: %+v", a.Rates)
	}
	var sum float64
	for _, v := range a.RPSHistory {
		sum += v
	}
	if sum != 1000 {
		t.Errorf("history sum = %v, want 1000", sum)
	}
	// p99 of retired seconds survives in the history.
	var p99s int
	for _, v := range a.P99History {
		if v > 0 {
			p99s++
		}
	}
	if p99s != 10 {
		t.Errorf("p99 history has %d non-zero points, want 10: %v", p99s, a.P99History)
	}
}

func TestFreshBurstRate(t *testing.T) {
	c := newClock()
	s := New(Options{Now: c.now})
	c.add(500 * time.Millisecond)
	for range 50 {
		request(s.Hooks(), "ns/a", "r", "", 200, time.Millisecond, 0, "")
	}
	// The second is not complete: nothing is counted yet.
	if rps := findAPI(t, s.Top(TopQuery{}), "ns/a").RPS; rps != 0 {
		t.Errorf("rps inside the first second = %v, want 0 (complete seconds only)", rps)
	}
	// Up for one complete second: the rate is not diluted by a 10 s window.
	c.add(time.Second)
	if rps := findAPI(t, s.Top(TopQuery{}), "ns/a").RPS; rps != 50 {
		t.Errorf("rps = %v, want 50 (span of one second)", rps)
	}
}

// Every snapshot taken within one second holds the same rates, whatever
// arrives meanwhile: the window ends at the last complete second.
func TestRatesFixedWithinSecond(t *testing.T) {
	c := newClock()
	s := New(Options{Now: c.now})
	for range 3 {
		for range 20 {
			request(s.Hooks(), "ns/a", "r", "", 200, time.Millisecond, 0, "")
		}
		c.add(time.Second)
	}
	first := findAPI(t, s.Top(TopQuery{}), "ns/a").Rates
	for range 100 {
		request(s.Hooks(), "ns/a", "r", "", 503, 50*time.Millisecond, 0, "")
	}
	c.add(900 * time.Millisecond)
	later := findAPI(t, s.Top(TopQuery{}), "ns/a").Rates
	// Totals since start count every request; the window does not move.
	later.RequestsTotal = first.RequestsTotal
	if later != first {
		t.Errorf("rates moved within a second:\n first %+v\n later %+v", first, later)
	}
	c.add(100 * time.Millisecond)
	if a := findAPI(t, s.Top(TopQuery{}), "ns/a"); a.Requests != 160 || a.Pct5xx < 60 {
		t.Errorf("next second: %d requests, %v%% 5xx, want 160 with the 100 503s", a.Requests, a.Pct5xx)
	}
}

func TestSnapshotSourcesAndUnmatched(t *testing.T) {
	c := newClock()
	snap := &ir.Snapshot{
		Listeners: []*ir.Listener{{Name: "http_0.0.0.0_8081", APIs: []*ir.API{{
			Name: "orders", Namespace: "ns", BasePath: "/orders",
			Routes: []*ir.Route{{Name: "backend-0", Destinations: []ir.Destination{{Service: "ns/backend", Weight: 100}}}},
		}}}},
		Services: []*ir.Service{{Name: "backend", Namespace: "ns", Endpoints: []ir.Endpoint{{Host: "10.0.0.1", Port: 80}, {Host: "10.0.0.2", Port: 80}}}},
	}
	var sent uint64 = 100
	s := New(Options{
		Now:      c.now,
		Snapshot: func() *ir.Snapshot { return snap },
		Status: func() Status {
			return Status{GatewayID: "gw-1", Version: "v0.1.0", DataPlane: "builtin", SnapshotVersion: 7, ReloadOK: false, ReloadError: "conf.d/a.yaml:3: bad"}
		},
		Kernel: func() topapi.Kernel {
			// The same endpoint text under another service is another
			// endpoint: its numbers must not land on ns/backend's row.
			return topapi.Kernel{Enabled: true, Endpoints: []topapi.KernelEndpoint{
				{Service: "ns/other", Endpoint: "10.0.0.1:80", Connects: 9},
				{Service: "ns/backend", Endpoint: "10.0.0.1:80", Connects: 3, RTTP50Ms: 0.2, Shared: true, SharedWith: []string{"ns/other 10.0.0.1:80"}},
			}}
		},
		Pipeline: func() topapi.Pipeline {
			return topapi.Pipeline{Mode: "in-process", Exporters: []topapi.Exporter{{Name: "splunk", Type: "splunk", Sent: sent}}}
		},
	})
	h := s.Hooks()
	h.EndpointHealth("ns/backend", "10.0.0.2:80", false)
	request(h, "", "", "", 404, time.Millisecond, 0, "")
	c.add(time.Second) // the request's second completes

	top := s.Top(TopQuery{Routes: []string{AllRoutes}})
	if top.Header.GatewayID != "gw-1" || top.Header.SnapshotVersion != 7 || top.Header.Reload.OK || top.Header.Reload.Error == "" {
		t.Errorf("header = %+v", top.Header)
	}
	a := findAPI(t, top, "ns/orders")
	if a.BasePath != "/orders" || a.Listener != "http_0.0.0.0_8081" || len(a.Routes) != 1 || a.Routes[0].Name != "backend-0" || len(a.Services) != 1 {
		t.Errorf("api from IR = %+v", a)
	}
	if u := findAPI(t, top, Unmatched); u.Requests != 1 || u.Pct4xx != 100 {
		t.Errorf("unmatched = %+v", u.Rates)
	}
	if len(top.Upstreams) != 2 || !top.Upstreams[0].Healthy || top.Upstreams[1].Healthy {
		t.Fatalf("upstreams = %+v", top.Upstreams)
	}
	if k := top.Upstreams[0].Kernel; k == nil || k.Connects != 3 || !k.Shared {
		t.Errorf("kernel data not attached: %+v", top.Upstreams[0])
	}
	c.add(time.Second)
	sent = 300
	top = s.Top(TopQuery{})
	if r := top.Pipeline.Exporters[0].SentPerSec; r != 200 {
		t.Errorf("sent/s = %v, want 200", r)
	}
}

// sseEvent is one parsed server-sent event.
type sseEvent struct{ event, data string }

func readEvents(t *testing.T, sc *bufio.Scanner, n int) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	for len(out) < n && sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		case line == "" && cur.event != "":
			out = append(out, cur)
			cur = sseEvent{}
		}
	}
	if len(out) < n {
		t.Fatalf("stream ended after %d of %d events: %v", len(out), n, sc.Err())
	}
	return out
}

func TestLogStreamOverSocket(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	// Backlog: two records before anyone subscribes, one of them a 5xx.
	s.Write(&accesslog.Record{ResponseCode: 200, APIInstance: "ns/a", Path: "/old-ok"})
	s.Write(&accesslog.Record{ResponseCode: 502, APIInstance: "ns/a", Path: "/old-fail", TraceID: "abc123"})

	resp, err := http.Get(srv.URL + "/api/v1/logs/stream?status=500&api=ns/a")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	ev := readEvents(t, sc, 1)
	if !strings.Contains(ev[0].data, `"/old-fail"`) || !strings.Contains(ev[0].data, `"abc123"`) {
		t.Fatalf("backlog event = %+v", ev[0])
	}
	// Wait until the handler is subscribed (the backlog proves it), then
	// publish: only matching records arrive, in order.
	rec := accesslog.Record{ResponseCode: 200, APIInstance: "ns/a", Path: "/ok"}
	s.Write(&rec)
	s.Write(&accesslog.Record{ResponseCode: 500, APIInstance: "ns/b", Path: "/other-api"})
	s.Write(&accesslog.Record{ResponseCode: 503, APIInstance: "ns/a", Path: "/new-fail"})
	s.Write(&accesslog.Record{ResponseCode: 0, APIInstance: "ns/a", Path: "/no-response"})
	ev = readEvents(t, sc, 2)
	var got []string
	for _, e := range ev {
		var r struct {
			Path string `json:"path"`
		}
		if err := json.Unmarshal([]byte(e.data), &r); err != nil || e.event != topapi.EventRecord {
			t.Fatalf("event %+v: %v", e, err)
		}
		got = append(got, r.Path)
	}
	if strings.Join(got, ",") != "/new-fail,/no-response" {
		t.Errorf("streamed %v, want /new-fail,/no-response", got)
	}
	if n := s.Top(TopQuery{}).Header.LogSubscribers; n != 1 {
		t.Errorf("subscribers = %d, want 1", n)
	}
}

func TestSlowSubscriberDoesNotBlock(t *testing.T) {
	s := New(Options{SubscriberBuffer: 4, LogRing: 16})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	// A subscriber that never reads its socket.
	resp, err := http.Get(srv.URL + "/api/v1/logs/stream?backlog=0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for s.logs.count() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("subscriber never registered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Far more than socket buffers hold: Write must keep returning, and
	// the loss must be counted rather than slowing the writer.
	rec := accesslog.Record{ResponseCode: 200, Path: "/" + strings.Repeat("x", 1000)}
	for range 100_000 {
		s.Write(&rec)
	}
	if d := s.Top(TopQuery{}).Header.LogDropped; d == 0 {
		t.Error("slow subscriber dropped nothing; expected a counted loss")
	}
}

func TestTokenAndBadQueries(t *testing.T) {
	s := New(Options{Token: "sekret"})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	get := func(path, tok string) int {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, tok string
		want      int
	}{
		{"/api/v1/top", "", 401},
		{"/api/v1/top", "wrong", 401},
		{"/api/v1/top", "sekret", 200},
		{"/api/v1/top?history=x", "sekret", 400},
		{"/api/v1/logs/stream?status=abc", "sekret", 400},
		{"/api/v1/logs/stream?backlog=-1", "sekret", 400},
		{"/api/v1/logs/stream?rate=x", "sekret", 400},
	} {
		if got := get(c.path, c.tok); got != c.want {
			t.Errorf("GET %s (token %q) = %d, want %d", c.path, c.tok, got, c.want)
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	prev := -1
	for us := int64(0); us < 1<<20; us += 7 {
		b := bucketOf(us)
		if b < prev || b >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d after %d", us, b, prev)
		}
		prev = b
		if mid := bucketMid(b); us >= 8 && math.Abs(mid-float64(us)) > 0.15*float64(us) {
			t.Fatalf("bucketMid(bucketOf(%d)) = %v: more than 15%% off", us, mid)
		}
	}
	if bucketOf(-5) != 0 || bucketOf(1<<40) != numBuckets-1 {
		t.Error("out-of-range values not clamped")
	}
}

func TestLogStreamRate(t *testing.T) {
	s := New(Options{SubscriberBuffer: 2000})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/logs/stream?backlog=0&rate=5")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for s.logs.count() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("subscriber never registered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for range 100 {
		s.Write(&accesslog.Record{ResponseCode: 200, Path: "/x"})
	}
	// Read until every record is accounted for: sent or reported sampled.
	sc := bufio.NewScanner(resp.Body)
	var records, sampled int
	for records+sampled < 100 {
		ev := readEvents(t, sc, 1)[0]
		switch ev.event {
		case topapi.EventRecord:
			records++
		case topapi.EventSampled:
			var v topapi.Sampled
			if err := json.Unmarshal([]byte(ev.data), &v); err != nil {
				t.Fatal(err)
			}
			sampled = int(v.Sampled)
		}
	}
	// A burst of 100 within far less than the 19 s it would take at
	// 5/s: most are skipped, and none is both sent and counted.
	if records+sampled != 100 || records >= 100 || sampled == 0 {
		t.Errorf("records=%d sampled=%d, want a split of 100 with some sampled", records, sampled)
	}
}

func TestDataPlaneEndpoints(t *testing.T) {
	s := New(Options{Endpoints: DataPlaneEndpoints(func() []observe.EndpointStatus {
		return []observe.EndpointStatus{
			{Service: "ns/a", Endpoint: "10.0.0.1:80", Healthy: true, ActiveCheck: true, ActiveHealthy: true},
			{Service: "ns/a", Endpoint: "10.0.0.2:80", Healthy: false, ActiveCheck: true, ActiveHealthy: true, Ejected: true},
			{Service: "ns/b", Endpoint: "10.0.1.1:80", Healthy: true},
		}
	})})
	got := s.Top(TopQuery{}).Upstreams
	want := []topapi.Upstream{
		{Service: "ns/a", Endpoint: "10.0.0.1:80", Healthy: true, Active: "healthy", Passive: "ok"},
		{Service: "ns/a", Endpoint: "10.0.0.2:80", Healthy: false, Active: "healthy", Passive: "ejected"},
		{Service: "ns/b", Endpoint: "10.0.1.1:80", Healthy: true, Passive: "ok"},
	}
	if len(got) != len(want) {
		t.Fatalf("upstreams = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("upstream %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestCountAccessLog(t *testing.T) {
	c := newClock()
	s := New(Options{Now: c.now, CountAccessLog: true})
	c.add(30 * time.Second)
	now := c.now()
	for i := range 40 {
		// Envoy's log arrives late: records of the last two seconds, and
		// some from 20 s ago (outside the window, inside the history).
		start := now.Add(-time.Duration(i%2) * time.Second)
		if i >= 30 {
			start = now.Add(-20 * time.Second)
		}
		s.Write(&accesslog.Record{StartTime: start, Duration: 5 * time.Millisecond, UpstreamServiceTime: 4 * time.Millisecond,
			ResponseCode: 200, APIInstance: "ns/envoy-api", Route: "r0", UpstreamCluster: "ns/backend"})
	}
	c.add(time.Second) // the current second completes
	a := findAPI(t, s.Top(TopQuery{History: 30, Routes: []string{AllRoutes}}), "ns/envoy-api")
	if a.Requests != 30 || a.RequestsTotal != 40 || !near(a.P50Ms, 5, 0.13) || len(a.Services) != 1 {
		t.Errorf("from the access log: %+v", a)
	}
	if h := a.RPSHistory; h[len(h)-1] != 15 || h[len(h)-2] != 15 || h[len(h)-21] != 10 {
		t.Errorf("history = %v, want 15 in each of the last two seconds and 10 twenty seconds before", h)
	}
	// Without the option the sink only feeds the log tail.
	s2 := New(Options{})
	s2.Write(&accesslog.Record{ResponseCode: 200, APIInstance: "ns/x"})
	if len(s2.Top(TopQuery{}).APIs) != 0 {
		t.Error("records counted without CountAccessLog")
	}
}

func TestSubscriberCap(t *testing.T) {
	s := New(Options{MaxSubscribers: 1})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	first, err := http.Get(srv.URL + "/api/v1/logs/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Body.Close()
	second, err := http.Get(srv.URL + "/api/v1/logs/stream")
	if err != nil {
		t.Fatal(err)
	}
	second.Body.Close()
	if first.StatusCode != 200 || second.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("statuses %d, %d; want 200 then 503", first.StatusCode, second.StatusCode)
	}
}
