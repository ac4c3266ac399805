package dataplane

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/ir"
)

func TestProxyBasicAndForwardedHeaders(t *testing.T) {
	up := echoUpstream(t, "a")
	g := startGateway(t, simple(t, up))

	req, _ := http.NewRequest("POST", g.url("/orders/7?x=1&y=2"), strings.NewReader("hello"))
	req.Header.Set("X-Forwarded-For", "10.0.0.1")
	req.Header.Set("User-Agent", "tester/1")
	req.Header.Set("Connection", "keep-alive, X-Secret-Hop")
	req.Header.Set("X-Secret-Hop", "drop me")
	req.Header.Set("X-Custom", "keep me")
	req.Host = "gw.example.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
	e := decodeEcho(t, string(body))
	if e.URI != "/orders/7?x=1&y=2" || e.Method != "POST" || e.Body != "hello" {
		t.Errorf("upstream saw %s %s body %q", e.Method, e.URI, e.Body)
	}
	if got := e.Header.Get("X-Forwarded-For"); got != "10.0.0.1, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", got)
	}
	if got := e.Header.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto = %q", got)
	}
	if got := e.Header.Get("X-Forwarded-Host"); got != "gw.example.com" {
		t.Errorf("X-Forwarded-Host = %q", got)
	}
	if e.Header.Get("X-Secret-Hop") != "" || e.Header.Get("X-Custom") != "keep me" {
		t.Errorf("hop-by-hop handling wrong: %v", e.Header)
	}
	// Host is the upstream's (documented decision), original in X-Forwarded-Host.
	if want := endpointOf(t, up).Address(); e.Host != want {
		t.Errorf("upstream Host = %q, want %q", e.Host, want)
	}
	id := e.Header.Get("X-Request-Id")
	if len(id) != 36 || id[14] != '4' {
		t.Errorf("generated x-request-id %q is not a UUIDv4", id)
	}

	rec := g.sink.waitRecord(t, func(r accesslog.Record) bool { return r.RequestID == id })
	if rec.ResponseCode != 200 || rec.Method != "POST" || rec.Path != "/orders/7?x=1&y=2" ||
		rec.Protocol != "HTTP/1.1" || rec.BytesReceived != 5 || rec.BytesSent != int64(len(body)) ||
		rec.XForwardedFor != "10.0.0.1, 127.0.0.1" || rec.UserAgent != "tester/1" ||
		rec.Authority != "gw.example.com" || rec.UpstreamHost != endpointOf(t, up).Address() ||
		rec.UpstreamCluster != "default/up" || rec.APIInstance != "default/api" || rec.Route != "r0" ||
		rec.GatewayID != "gw-test" || rec.DownstreamRemoteAddress == "" || rec.ResponseFlags != "" {
		t.Errorf("record = %+v", rec)
	}

	// A client-supplied request id is kept.
	req, _ = http.NewRequest("GET", g.url("/x"), nil)
	req.Header.Set("X-Request-Id", "my-id-1")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := decodeEcho(t, string(body)).Header.Get("X-Request-Id"); got != "my-id-1" {
		t.Errorf("x-request-id = %q, want kept", got)
	}
}

func TestRoutingBasePathAndRules(t *testing.T) {
	a, b, c, d := echoUpstream(t, "a"), echoUpstream(t, "b"), echoUpstream(t, "c"), echoUpstream(t, "d")
	services := []*ir.Service{svc("a", endpointOf(t, a)), svc("b", endpointOf(t, b)), svc("c", endpointOf(t, c)), svc("d", endpointOf(t, d))}
	getOnly := catchAll("get-users", "b")
	getOnly.Rules = []ir.Rule{{Path: ir.MustRegexp("/users(?:/.*)?"), Methods: ir.MustRegexp("GET")}}
	byHeader := catchAll("beta", "c")
	byHeader.Rules = []ir.Rule{{Headers: []ir.HeaderMatch{{Name: "x-beta", Value: ir.MustRegexp("yes|true")}}}}
	byHost := catchAll("host", "d")
	byHost.Rules = []ir.Rule{{Host: ir.MustRegexp(`admin\.example\.com`)}}
	s := snapshot(1, services,
		api("root", "/", catchAll("root", "a")),
		api("api", "/api", getOnly, byHeader, byHost),
	)
	g := startGateway(t, s)

	cases := []struct {
		method, path, host string
		header             [2]string
		want, wantURI      string
		status             int
	}{
		{"GET", "/", "", [2]string{}, "a", "/", 200},
		{"GET", "/apix", "", [2]string{}, "a", "/apix", 200},           // segment boundary
		{"GET", "/api/users/1", "", [2]string{}, "b", "/users/1", 200}, // base path stripped
		{"GET", "/api/users", "", [2]string{}, "b", "/users", 200},
		{"POST", "/api/users", "", [2]string{"X-Beta", "yes"}, "c", "/users", 200},
		{"GET", "/api/other", "admin.example.com:8080", [2]string{}, "d", "/other", 200},
		// /api matches no route: falls through to the "/" API.
		{"DELETE", "/api/users", "", [2]string{}, "a", "/api/users", 200},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, g.url(tc.path), nil)
		if tc.host != "" {
			req.Host = tc.host
		}
		if tc.header[0] != "" {
			req.Header.Set(tc.header[0], tc.header[1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: status %d", tc.method, tc.path, resp.StatusCode)
			continue
		}
		e := decodeEcho(t, string(body))
		if e.Name != tc.want || e.URI != tc.wantURI {
			t.Errorf("%s %s host %q: served by %s as %s, want %s as %s", tc.method, tc.path, tc.host, e.Name, e.URI, tc.want, tc.wantURI)
		}
	}
}

func TestNoRoute404(t *testing.T) {
	up := echoUpstream(t, "a")
	s := snapshot(1, []*ir.Service{svc("a", endpointOf(t, up))}, api("api", "/api", catchAll("r", "a")))
	g := startGateway(t, s)
	resp, body := get(t, http.DefaultClient, g.url("/nothing/here"))
	if resp.StatusCode != 404 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	e := decodeError(t, body)
	if e.Status != 404 || e.RequestID == "" || !strings.Contains(e.Error, "no route") {
		t.Errorf("error body %+v", e)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content-type %q", ct)
	}
	rec := g.sink.waitRecord(t, func(r accesslog.Record) bool { return r.RequestID == e.RequestID })
	if rec.ResponseFlags != "NR" || rec.ResponseCode != 404 || rec.APIInstance != "" {
		t.Errorf("record %+v", rec)
	}
}

func TestCaptureRewriteAndDestinationPath(t *testing.T) {
	up := echoUpstream(t, "a")
	service := svc("a", endpointOf(t, up))
	service.BasePath = "/svc"
	rw := catchAll("rw", "a")
	rw.Rules = []ir.Rule{{Path: ir.MustRegexp("/api(/.*)")}, {Path: ir.MustRegexp("/v(\\d+)/items(/.*)")}}
	rw.DestinationPath = "/backend/"
	s := snapshot(1, []*ir.Service{service}, api("api", "/base", rw))
	g := startGateway(t, s)
	for path, want := range map[string]string{
		"/base/api/orders?q=1": "/svc/backend/orders?q=1",
		"/base/v2/items/9":     "/svc/backend/2/9",
	} {
		resp, body := get(t, http.DefaultClient, g.url(path))
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d %s", path, resp.StatusCode, body)
		}
		if got := decodeEcho(t, body).URI; got != want {
			t.Errorf("%s went upstream as %s, want %s", path, got, want)
		}
	}
}

func TestRefusedUpstream502(t *testing.T) {
	s := snapshot(1, []*ir.Service{svc("dead", freeAddr(t))}, api("api", "/", catchAll("r", "dead")))
	g := startGateway(t, s)
	resp, body := get(t, http.DefaultClient, g.url("/x"))
	if resp.StatusCode != 502 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	e := decodeError(t, body)
	if e.Status != 502 || !strings.Contains(e.Error, "connect") {
		t.Errorf("body %+v", e)
	}
	rec := g.sink.waitRecord(t, func(r accesslog.Record) bool { return r.RequestID == e.RequestID })
	if rec.ResponseFlags != "UF" || rec.ResponseCode != 502 || rec.UpstreamHost == "" {
		t.Errorf("record %+v", rec)
	}
}

func TestRetryOnConnectFailure(t *testing.T) {
	up := echoUpstream(t, "live")
	dead := freeAddr(t)
	service := svc("mixed", dead, endpointOf(t, up))
	r := catchAll("r", "mixed")
	r.Retry.Attempts = 2
	g := startGateway(t, snapshot(1, []*ir.Service{service}, api("api", "/", r)))
	// Every GET succeeds: a refused attempt is retried on the other endpoint.
	for i := 0; i < 10; i++ {
		resp, body := get(t, http.DefaultClient, g.url("/ok"))
		if resp.StatusCode != 200 || decodeEcho(t, body).Name != "live" {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
	}
	// POST is not idempotent: not retried, so some fail with 502.

	// All endpoints dead: retries exhausted, UF,URX.
	s2 := snapshot(2, []*ir.Service{svc("mixed", dead, freeAddr(t))}, api("api", "/", r))
	if err := g.dp.Apply(s2); err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, http.DefaultClient, g.url("/fail"))
	if resp.StatusCode != 502 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	id := decodeError(t, body).RequestID
	rec := g.sink.waitRecord(t, func(r accesslog.Record) bool { return r.RequestID == id })
	if rec.ResponseFlags != "UF,URX" {
		t.Errorf("flags %q", rec.ResponseFlags)
	}
}

func TestRouteTimeout504(t *testing.T) {
	release := make(chan struct{})
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	r := catchAll("slow", "up")
	r.Timeout = 300 * time.Millisecond
	g := startGateway(t, snapshot(1, []*ir.Service{svc("up", endpointOf(t, up))}, api("api", "/", r)))
	resp, body := get(t, http.DefaultClient, g.url("/hang"))
	if resp.StatusCode != 504 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	e := decodeError(t, body)
	rec := g.sink.waitRecord(t, func(r accesslog.Record) bool { return r.RequestID == e.RequestID })
	if rec.ResponseFlags != "UT" || rec.ResponseCode != 504 {
		t.Errorf("record %+v", rec)
	}
	if rec.Duration < 300*time.Millisecond {
		t.Errorf("answered before the route timeout: %v", rec.Duration)
	}
}

func TestRoundRobinAndLeastRequest(t *testing.T) {
	ups := []*ir.Endpoint{}
	names := map[string]string{}
	for _, n := range []string{"a", "b", "c"} {
		u := echoUpstream(t, n)
		ep := endpointOf(t, u)
		ups = append(ups, &ep)
		names[ep.Address()] = n
	}
	service := svc("pool", *ups[0], *ups[1], *ups[2])
	g := startGateway(t, snapshot(1, []*ir.Service{service}, api("api", "/", catchAll("r", "pool"))))
	counts := map[string]int{}
	for i := 0; i < 30; i++ {
		_, body := get(t, http.DefaultClient, g.url("/"))
		counts[decodeEcho(t, body).Name]++
	}
	for _, n := range []string{"a", "b", "c"} {
		if counts[n] != 10 {
			t.Errorf("round robin: %v", counts)
			break
		}
	}

	// Least request: an endpoint holding a stuck request gets no new ones.
	block := make(chan struct{})
	var once sync.Once
	entered := make(chan struct{})
	slow := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			once.Do(func() { close(entered) })
			<-block
		}
		io.WriteString(w, `{"Name":"slow"}`)
	})
	fast := upstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"Name":"fast"}`) })
	lr := svc("lr", endpointOf(t, slow), endpointOf(t, fast))
	lr.LB = ir.LeastRequest
	// Make sure the blocked request lands on slow: only slow serves /block.
	if err := g.dp.Apply(snapshot(2, []*ir.Service{lr}, api("api", "/", catchAll("r", "lr")))); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			resp, err := http.Get(g.url("/block"))
			if err != nil {
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), "slow") {
				return
			}
			select {
			case <-entered:
				return
			default:
			}
		}
	}()
	<-entered
	for i := 0; i < 20; i++ {
		_, body := get(t, http.DefaultClient, g.url("/"))
		if n := decodeEcho(t, body).Name; n != "fast" {
			t.Fatalf("least-request sent request %d to %s while it had one in flight", i, n)
		}
	}
	close(block)
	<-done
}

func TestWeightedSplit(t *testing.T) {
	a, b := echoUpstream(t, "a"), echoUpstream(t, "b")
	r := &ir.Route{Name: "split", Destinations: []ir.Destination{{Service: "default/a", Weight: 80}, {Service: "default/b", Weight: 20}}}
	g := startGateway(t, snapshot(1, []*ir.Service{svc("a", endpointOf(t, a)), svc("b", endpointOf(t, b))}, api("api", "/", r)))
	const n = 1000
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		_, body := get(t, http.DefaultClient, g.url("/"))
		counts[decodeEcho(t, body).Name]++
	}
	// Binomial(1000, 0.2): sd ~12.6; 200±80 is over 6 sd.
	if counts["b"] < 120 || counts["b"] > 280 || counts["a"]+counts["b"] != n {
		t.Errorf("80/20 split gave %v", counts)
	}
}

func TestStreamingResponse(t *testing.T) {
	next := make(chan struct{})
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			<-next
		}
	})
	g := startGateway(t, simple(t, up))
	resp, err := http.Get(g.url("/events"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := 0; i < 3; i++ {
		// Each event arrives while the upstream is still blocked.
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		br.ReadString('\n')
		next <- struct{}{}
	}
}

func TestStreamingRequestBody(t *testing.T) {
	got := make(chan string, 4)
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				got <- string(buf[:n])
			}
			if err != nil {
				break
			}
		}
		io.WriteString(w, "done")
	})
	g := startGateway(t, simple(t, up))
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", g.url("/upload"), pr)
	respc := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			close(respc)
			return
		}
		respc <- resp
	}()
	pw.Write([]byte("part1"))
	if s := <-got; s != "part1" {
		t.Fatalf("upstream got %q", s)
	}
	pw.Write([]byte("part2"))
	if s := <-got; s != "part2" {
		t.Fatalf("upstream got %q", s)
	}
	pw.Close()
	resp := <-respc
	if resp == nil {
		t.FailNow()
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "done" {
		t.Fatalf("body %q", b)
	}
}

func TestLargeBodiesBothWays(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		}
		w.Write(b)
	})
	g := startGateway(t, simple(t, up))
	payload := strings.Repeat("0123456789abcdef", 200_000) // 3.2 MB
	for _, q := range []string{"", "?chunked=1"} {
		resp, err := http.Post(g.url("/echo"+q), "application/octet-stream", strings.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != payload {
			t.Fatalf("%s: echoed %d bytes, want %d", q, len(b), len(payload))
		}
	}
}

func TestHeadAndNoBodyStatuses(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.WriteHeader(304)
		default:
			w.Header().Set("Content-Length", "11")
			io.WriteString(w, "hello world")
		}
	})
	g := startGateway(t, simple(t, up))
	// Keep-alive reuse across these proves the framing was right.
	c := &http.Client{}
	for i := 0; i < 3; i++ {
		resp, err := c.Head(g.url("/x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ContentLength != 11 {
			t.Fatalf("HEAD: %d len %d", resp.StatusCode, resp.ContentLength)
		}
		for _, p := range []string{"/204", "/304"} {
			resp, _ := get(t, c, g.url(p))
			if fmt.Sprint(resp.StatusCode) != p[1:] {
				t.Fatalf("%s: %d", p, resp.StatusCode)
			}
		}
		if resp, body := get(t, c, g.url("/x")); body != "hello world" {
			t.Fatalf("GET: %d %q", resp.StatusCode, body)
		}
	}
}

func TestHeaderLimits431And400(t *testing.T) {
	up := echoUpstream(t, "a")
	g := startGateway(t, simple(t, up))
	for size, want := range map[int]int{56 << 10: 200, 65 << 10: 431} {
		req, _ := http.NewRequest("GET", g.url("/"), nil)
		req.Header.Set("X-Big", strings.Repeat("a", size))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%d KiB header: status %d, want %d", size>>10, resp.StatusCode, want)
		}
	}

	conn, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GARBAGE / NOT-HTTP\r\n\r\n")
	line, _ := bufio.NewReader(conn).ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 400") {
		t.Errorf("malformed request answered %q", line)
	}
}

func TestSlowHeadersClosed(t *testing.T) {
	up := echoUpstream(t, "a")
	g := startGateway(t, simple(t, up), func(o *Options) { o.ReadHeaderTimeout = 200 * time.Millisecond })
	conn, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n") // never finishes
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	// The server closes the connection (EOF) or answers 408 and closes.
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("connection not closed by the gateway: %v (read %q)", err, b)
	}
	if len(b) > 0 && !strings.Contains(string(b), "408") {
		t.Errorf("unexpected answer %q", b)
	}
}

func TestGracefulShutdownDrains(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "finished")
	})
	g := startGateway(t, simple(t, up))
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get(g.url("/long"))
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{string(b), err}
	}()
	<-entered
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := contextWithTimeout(20 * time.Second)
		defer cancel()
		shut <- g.dp.Shutdown(ctx)
	}()
	// New connections are refused once the listener is closed.
	waitFor(t, "listener closed", func() bool {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	close(release)
	r := <-res
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request: %q %v", r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := g.dp.Apply(simple(t, up)); err != ErrClosed {
		t.Errorf("Apply after Shutdown: %v", err)
	}
}

func TestListenerAddressInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	up := echoUpstream(t, "a")
	s := simple(t, up)
	s.Listeners[0].Port = port
	dp := New(Options{Logger: testLogger(t)})
	defer dp.Shutdown(t.Context())
	err = dp.Apply(s)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("127.0.0.1:%d", port)) {
		t.Fatalf("Apply on a busy port: %v", err)
	}
}

func TestDownstreamDisconnectWhileWaiting(t *testing.T) {
	for _, withPolicy := range []bool{false, true} {
		t.Run(fmt.Sprintf("policies=%v", withPolicy), func(t *testing.T) { testDownstreamDisconnect(t, withPolicy) })
	}
}

func testDownstreamDisconnect(t *testing.T, withPolicy bool) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	r := catchAll("slow", "up")
	r.Timeout = time.Minute
	s := snapshot(1, []*ir.Service{svc("up", endpointOf(t, up))}, api("api", "/", r))
	if withPolicy {
		s.Listeners[0].APIs[0].Policies = []*ir.Policy{{Name: "flexgw-test-deny", Binding: "default/deny"}}
	}
	g := startGateway(t, s)
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /gone HTTP/1.1\r\nHost: gw\r\n\r\n")
	<-entered
	c.Close()
	// Recorded long before the one-minute route timeout.
	rec := g.sink.waitRecord(t, func(r accesslog.Record) bool { return r.Path == "/gone" })
	if rec.ResponseFlags != "DC" || rec.ResponseCode != 0 {
		t.Errorf("record %+v", rec)
	}
}

// A pooled connection last used by a request with a body carries an
// expired write deadline; the next bodiless request must still work.
func TestPooledConnAfterExpiredDeadline(t *testing.T) {
	up := echoUpstream(t, "a")
	r := catchAll("r", "up")
	// Long enough for a loaded, race-instrumented machine to answer each
	// request in time; the test then waits past it.
	r.Timeout = 2 * time.Second
	g := startGateway(t, snapshot(1, []*ir.Service{svc("up", endpointOf(t, up))}, api("api", "/", r)))
	resp, err := http.Post(g.url("/post"), "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	posted := time.Now()
	waitFor(t, "route deadline to pass", func() bool { return time.Since(posted) > r.Timeout+100*time.Millisecond })
	for i := 0; i < 3; i++ {
		if resp, body := get(t, http.DefaultClient, g.url("/get")); resp.StatusCode != 200 {
			t.Fatalf("GET %d on the pooled connection: %d %s", i, resp.StatusCode, body)
		}
	}
}

// An upstream that closes idle keep-alive connections (as Node.js does
// after 5s) must not make a non-retryable POST fail on a dead pooled
// connection.
func TestIdleConnectionClosedByUpstream(t *testing.T) {
	var mu sync.Mutex
	var conns []net.Conn
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	up.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateIdle {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}
	up.Start()
	defer up.Close()
	g := startGateway(t, simple(t, up))
	if resp, _ := get(t, http.DefaultClient, g.url("/first")); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	// The upstream closes the now idle connection.
	waitFor(t, "idle upstream connection", func() bool { mu.Lock(); defer mu.Unlock(); return len(conns) > 0 })
	mu.Lock()
	for _, c := range conns {
		c.Close()
	}
	mu.Unlock()
	closed := time.Now()
	waitFor(t, "connection idle past the probe threshold", func() bool { return time.Since(closed) > probeAfterIdle+100*time.Millisecond })
	resp, err := http.Post(g.url("/post"), "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("POST after upstream closed the idle connection: %d %s", resp.StatusCode, b)
	}
}

func TestMalformedRequestBody400(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
	g := startGateway(t, simple(t, up))
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZZ\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || decodeError(t, string(b)).Status != 400 {
		t.Fatalf("malformed chunked body: %d %s", resp.StatusCode, b)
	}
}
