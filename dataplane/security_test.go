package dataplane

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flexgw/flexgw/ir"
)

// This file is the data plane's security regression suite: every attack
// from issue 12 that concerns requests, sent over a real socket to a
// running data plane with real policies, each naming the status the client
// must get and what the upstream may receive. docs/security.md describes
// it; the Envoy side of the path cases is in
// envoy/translate/equivalence_test.go.

// secAttack is one attack.
type secAttack struct {
	name string
	// target is the request-target; head adds header lines (each ending
	// "\r\n"). raw, when set, is the whole request instead; it must carry
	// "X-Case: {case}\r\n" so the upstream can tell cases apart.
	target string
	head   string
	raw    string
	status int
	// upstream is the request-target the upstream must receive; "" means
	// the upstream must receive nothing.
	upstream string
	// check, when set, inspects what the upstream received.
	check func(t *testing.T, got *http.Request)
	// bodyOnly: the head may have reached the upstream before the body
	// was found malformed (the request is streamed); only the status is
	// checked.
	bodyOnly bool
}

// upstreamLog records what an upstream received, by X-Case.
type upstreamLog struct {
	mu   sync.Mutex
	seen map[string]*http.Request
}

func (l *upstreamLog) get(c string) *http.Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[c]
}

func newUpstreamLog(t *testing.T) (*upstreamLog, ir.Endpoint) {
	l := &upstreamLog{seen: map[string]*http.Request{}}
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		l.mu.Lock()
		l.seen[r.Header.Get("X-Case")] = r.Clone(r.Context())
		l.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "upstream "+r.RequestURI)
	})
	return l, endpointOf(t, up)
}

const secUser, secPass = "alice", "s3cret"

var secAuth = "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(secUser+":"+secPass)) + "\r\n"

func basicAuthPolicy(rules ...ir.Rule) *ir.Policy {
	cfg, _ := json.Marshal(map[string]string{"username": secUser, "password": secPass})
	return &ir.Policy{Name: "http-basic-authentication-flex", Binding: "default/auth", Config: cfg, Rules: rules}
}

// securitySnapshot: on one listener,
//   - "app" at "/": basic auth only for /admin(/.*)?; a route rewriting
//     /api(/.*) to /v1, one rewriting /dots(.*) to /d (a pattern whose
//     capture can be a dot segment), and a catch-all;
//   - "secure" at /secure: basic auth on everything;
//   - "public" at /public: no policy.
func securitySnapshot(ep ir.Endpoint) *ir.Snapshot {
	dots := &ir.Route{Name: "dots", DestinationPath: "/d", Rules: []ir.Rule{{Path: ir.MustRegexp("/dots(.*)")}},
		Destinations: []ir.Destination{{Service: "default/up", Weight: 100}}}
	rw := &ir.Route{Name: "rw", DestinationPath: "/v1", Rules: []ir.Rule{{Path: ir.MustRegexp("/api(/.*)")}},
		Destinations: []ir.Destination{{Service: "default/up", Weight: 100}}}
	app := api("app", "/", dots, rw, catchAll("all", "up"))
	app.Policies = []*ir.Policy{basicAuthPolicy(ir.Rule{Path: ir.MustRegexp("/admin(/.*)?")})}
	secure := api("secure", "/secure", catchAll("all", "up"))
	secure.Policies = []*ir.Policy{basicAuthPolicy()}
	public := api("public", "/public", catchAll("all", "up"))
	inject := api("inject", "/inject", catchAll("all", "up"))
	cfg, _ := json.Marshal(map[string]any{"inboundHeaders": []map[string]string{
		{"key": "X-Api-Key", "value": "gw-key"}, {"key": "Authorization", "value": "Bearer gw"},
	}})
	inject.Policies = []*ir.Policy{{Name: "header-injection-flex", Binding: "default/inject", Config: cfg}}
	return snapshot(1, []*ir.Service{svc("up", ep)}, app, secure, public, inject)
}

// pathAttacks are the path normalisation cases; the Envoy equivalence
// test sends the same paths through the translation.
var pathAttacks = []secAttack{
	{name: "baseline: protected path without credentials", target: "/admin/x", status: 401},
	{name: "baseline: protected path with credentials", target: "/admin/x", head: secAuth, status: 200, upstream: "/admin/x"},
	{name: "repeated slash before the protected prefix", target: "//admin/x", status: 401},
	{name: "dot segment before the protected prefix", target: "/./admin/x", status: 401},
	{name: "unreserved percent-escape in the protected prefix", target: "/%61dmin/x", status: 401},
	{name: "dot-dot segment into the protected prefix", target: "/x/../admin/x", status: 401},
	{name: "escaped dot segment", target: "/%2e/admin/x", status: 401},
	{name: "escaped dot-dot segment", target: "/x/%2E%2e/admin/x", status: 401},
	{name: "backslash as a slash", target: "/x\\..\\admin/x", status: 401},
	{name: "escaped slash before the protected prefix", target: "/%2Fadmin/x", status: 400},
	{name: "escaped backslash", target: "/x%5C..%5Cadmin/x", status: 400},
	{name: "normalised path reaches the upstream", target: "/x//a/./b/../c/%7euser", head: secAuth, status: 200, upstream: "/x/a/c/~user"},
	{name: "traversal from an open API into a protected one", target: "/public/../secure/x", status: 401},
	{name: "escaped traversal across APIs", target: "/public/%2e%2e/secure/x", status: 401},
	{name: "Tomcat ..; traversal across APIs", target: "/public/..;/secure/x", status: 401},
	{name: "escaped dots with parameters", target: "/public/%2e%2e;/secure/x", status: 400},
	{name: "open API still open (its base path is not sent upstream)", target: "/public/a", status: 200, upstream: "/a"},
	{name: "rewrite cannot climb out of destinationPath", target: "/api/../../etc/passwd", status: 200, upstream: "/etc/passwd"},
	{name: "rewrite of a normalised path", target: "/api/x/../y", status: 200, upstream: "/v1/y"},
	{name: "rewrite capture that is a dot segment", target: "/dots..", status: 400},
	{name: "rewrite capture that is not a dot segment", target: "/dots/x?q=1", status: 200, upstream: "/d/x?q=1"},
	{name: "malformed percent-escape", target: "/a%zz", status: 400},
	{name: "fragment in the request target", target: "/a#frag", status: 400},
}

// headerAttacks are the hop-by-hop, header injection and upgrade cases.
var headerAttacks = []secAttack{
	{name: "client pre-empts an injected header", target: "/inject/a", head: "Authorization: Bearer client\r\n", status: 200, upstream: "/a",
		check: wantHeader("Authorization", "Bearer gw")},
	{name: "Connection strips an injected header", target: "/inject/a", head: "Connection: X-Api-Key\r\n", status: 200, upstream: "/a",
		check: wantHeader("X-Api-Key", "gw-key")},
	{name: "Connection-listed client header is hop-by-hop", target: "/public/a", head: "Connection: X-Foo\r\nX-Foo: 1\r\n", status: 200, upstream: "/a",
		check: wantHeader("X-Foo")},
	{name: "hop-by-hop headers do not reach the upstream", target: "/public/a", head: "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTe: gzip\r\n", status: 200, upstream: "/a",
		check: func(t *testing.T, got *http.Request) {
			wantHeader("Keep-Alive")(t, got)
			wantHeader("Proxy-Connection")(t, got)
			wantHeader("Te")(t, got)
		}},
	{name: "a policy never sees a hop-by-hop header (rule on Connection-listed header)", target: "/admin/x", head: "Connection: Authorization\r\n" + secAuth, status: 401},
	{name: "h2c upgrade is served as a plain request", target: "/public/a",
		head: "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n", status: 200, upstream: "/a",
		check: func(t *testing.T, got *http.Request) {
			wantHeader("Upgrade")(t, got)
			wantHeader("Http2-Settings")(t, got)
		}},
	{name: "TLS upgrade is served as a plain request", target: "/public/a", head: "Connection: Upgrade\r\nUpgrade: TLS/1.2\r\n", status: 200, upstream: "/a",
		check: wantHeader("Upgrade")},
}

// wantHeader checks that the upstream got exactly vals for key (none
// when vals is empty).
func wantHeader(key string, vals ...string) func(*testing.T, *http.Request) {
	return func(t *testing.T, got *http.Request) {
		t.Helper()
		have := got.Header.Values(key)
		if strings.Join(have, "\n") != strings.Join(vals, "\n") {
			t.Errorf("upstream got %s %q, want %q", key, have, vals)
		}
	}
}

// parseAttacks are the lenient-parsing cases: each is a request a
// stricter or laxer hop in front could frame differently.
var parseAttacks = []secAttack{
	{name: "chunk size with 0x prefix", raw: "POST /public/a HTTP/1.1\r\nHost: x\r\nX-Case: {case}\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", status: 400, bodyOnly: true},
	{name: "chunk size with trailing garbage", raw: "POST /public/a HTTP/1.1\r\nHost: x\r\nX-Case: {case}\r\nTransfer-Encoding: chunked\r\n\r\n5xyz\r\nhello\r\n0\r\n\r\n", status: 400, bodyOnly: true},
	{name: "chunk data not followed by CRLF", raw: "POST /public/a HTTP/1.1\r\nHost: x\r\nX-Case: {case}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXY0\r\n\r\n", status: 400, bodyOnly: true},
	{name: "chunk size line ending in a bare LF", raw: "POST /public/a HTTP/1.1\r\nHost: x\r\nX-Case: {case}\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", status: 400, bodyOnly: true},
	{name: "chunk extension accepted", raw: "POST /public/a HTTP/1.1\r\nHost: x\r\nX-Case: {case}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5 ;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", status: 200, upstream: "/a"},
	{name: "HTTP/1.0 with Transfer-Encoding", raw: "POST /public/a HTTP/1.0\r\nHost: x\r\nX-Case: {case}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: 400},
	{name: "Host that is no authority", raw: "GET /public/a HTTP/1.1\r\nHost: a b/c@d\"<x>\r\nX-Case: {case}\r\n\r\n", status: 400},
	{name: "absolute-form authority wins over Host", raw: "GET http://auth.example/public/a HTTP/1.1\r\nHost: spoof.example\r\nX-Case: {case}\r\nConnection: close\r\n\r\n", status: 200, upstream: "/a",
		check: wantHeader("X-Forwarded-Host", "auth.example")},
	{name: "more than 100 header fields", raw: "GET /public/a HTTP/1.1\r\nHost: x\r\nX-Case: {case}\r\n" + strings.Repeat("X-H: 1\r\n", 100) + "\r\n", status: 400},
	{name: "a stream of empty lines before the request", raw: strings.Repeat("\r\n", 9) + "GET /public/a HTTP/1.1\r\nHost: x\r\nX-Case: {case}\r\n\r\n", status: 400},
	{name: "CL.TE", raw: "POST /public/a HTTP/1.1\r\nHost: x\r\nX-Case: {case}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400},
	{name: "obs-fold", raw: "GET /public/a HTTP/1.1\r\nHost: x\r\nX-Case: {case}\r\nX-A: 1\r\n 2\r\n\r\n", status: 400},
	{name: "NUL in a value", raw: "GET /public/a HTTP/1.1\r\nHost: x\r\nX-Case: {case}\r\nX-A: 1\x002\r\n\r\n", status: 400},
}

func TestSecurityParseAttacks(t *testing.T) {
	log, ep := newUpstreamLog(t)
	g := startGateway(t, securitySnapshot(ep))
	runAttacks(t, g, log, parseAttacks)
}

// TestSecurityTimeouts: a body that stops gets 408; a silent connection
// and a partial h2 preface are closed after the header timeout counted
// from accept, although the idle timeout is an hour.
func TestSecurityTimeouts(t *testing.T) {
	log, ep := newUpstreamLog(t)
	g := startGateway(t, securitySnapshot(ep), func(o *Options) {
		o.BodyTimeout = 300 * time.Millisecond
		o.ReadHeaderTimeout = 300 * time.Millisecond
		o.IdleTimeout = time.Hour
	})
	_ = log
	status, body := sendRaw(t, g.addr, "POST /public/a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nx")
	if status != http.StatusRequestTimeout {
		t.Errorf("stalled body: %d (%s), want 408", status, body)
	}
	for _, pre := range []string{"", "PRI * HTTP/2.0\r\n"} {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, pre)
		wantClosedSoon(t, c, c, pre)
	}
	// On a kept-alive connection the next head is due within the header
	// timeout once it starts, also behind leading empty lines (which hold
	// an end-of-head marker of their own).
	for _, next := range []string{"GET /public/a HTTP/1.1\r\nHost: x\r\n", "\r\n\r\nGET /public/a HTTP/1.1\r\n"} {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		io.WriteString(c, "GET /public/a HTTP/1.1\r\nHost: x\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		io.WriteString(c, next)
		wantClosedSoon(t, c, br, "after a response: "+next)
	}
}

// wantClosedSoon fails t when the gateway keeps c (read through r) open
// for 20 s after the client sent what.
func wantClosedSoon(t *testing.T, c net.Conn, r io.Reader, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.ReadAll(r)
	c.Close()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("connection sending %q held open", what)
	}
}

func TestSecurityHeaderAttacks(t *testing.T) {
	log, ep := newUpstreamLog(t)
	g := startGateway(t, securitySnapshot(ep))
	runAttacks(t, g, log, headerAttacks)
}

// TestSecurityUnaskedSwitch: an upstream answering 101 to a request that
// asked for no upgrade gets no tunnel (502).
func TestSecurityUnaskedSwitch(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\nraw tunnel bytes")
				io.Copy(io.Discard, br)
			}()
		}
	}()
	a := ln.Addr().(*net.TCPAddr)
	g := startGateway(t, snapshot(1, []*ir.Service{svc("up", ir.Endpoint{Host: "127.0.0.1", Port: a.Port})}, api("api", "/", catchAll("r", "up"))))
	status, body := sendRaw(t, g.addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
	if status != http.StatusBadGateway {
		t.Fatalf("status %d (%s), want 502", status, body)
	}
}

func TestSecurityPathAttacks(t *testing.T) {
	log, ep := newUpstreamLog(t)
	g := startGateway(t, securitySnapshot(ep))
	runAttacks(t, g, log, pathAttacks)
}

// runAttacks sends every case on its own connection and checks the
// status and what the upstream received.
func runAttacks(t *testing.T, g *gateway, log *upstreamLog, cases []secAttack) {
	t.Helper()
	for i, c := range cases {
		id := fmt.Sprint(i)
		req := c.raw
		if req == "" {
			req = "GET " + c.target + " HTTP/1.1\r\nHost: gw.example\r\nX-Case: {case}\r\n" + c.head + "Connection: close\r\n\r\n"
		}
		req = strings.ReplaceAll(req, "{case}", id)
		status, body := sendRaw(t, g.addr, req)
		if status != c.status {
			t.Errorf("%s: %q got %d, want %d (%s)", c.name, c.target, status, c.status, body)
			continue
		}
		got := log.get(id)
		switch {
		case c.bodyOnly:
		case c.upstream == "" && got != nil:
			t.Errorf("%s: %q reached the upstream as %q", c.name, c.target, got.RequestURI)
		case c.upstream != "" && got == nil:
			t.Errorf("%s: %q did not reach the upstream", c.name, c.target)
		case c.upstream != "" && got.RequestURI != c.upstream:
			t.Errorf("%s: %q reached the upstream as %q, want %q", c.name, c.target, got.RequestURI, c.upstream)
		case c.check != nil && got != nil:
			c.check(t, got)
		}
	}
}

// sendRaw writes req on a new connection and reads one response.
// status is 0 when the gateway closed without answering.
func sendRaw(t *testing.T, addr, req string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestEscapedSlashesActions: each --escaped-slashes value does what
// docs/security.md says.
func TestEscapedSlashesActions(t *testing.T) {
	for _, tc := range []struct {
		es       ir.EscapedSlashes
		status   int
		upstream string
		location string
	}{
		{ir.EscapedSlashesReject, 400, "", ""},
		{ir.EscapedSlashesUnescapeRedirect, 307, "", "/public/a/b?q=1"},
		{ir.EscapedSlashesUnescapeForward, 200, "/a/b?q=1", ""},
		{ir.EscapedSlashesKeep, 200, "/a%2Fb?q=1", ""},
	} {
		t.Run(tc.es.String(), func(t *testing.T) {
			log, ep := newUpstreamLog(t)
			g := startGateway(t, securitySnapshot(ep), func(o *Options) { o.EscapedSlashes = tc.es })
			c, err := net.Dial("tcp", g.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "GET /public/a%2Fb?q=1 HTTP/1.1\r\nHost: x\r\nX-Case: 1\r\nConnection: close\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location {
				t.Fatalf("status %d, Location %q; want %d, %q", resp.StatusCode, resp.Header.Get("Location"), tc.status, tc.location)
			}
			got := log.get("1")
			if (got == nil) != (tc.upstream == "") || got != nil && got.RequestURI != tc.upstream {
				t.Fatalf("upstream received %v, want %q", got, tc.upstream)
			}
		})
	}
}

// TestSecurityRequestReuse: the h1 server reuses a connection's request,
// header map, context and request state from request to request, also
// through policy chains. Nothing of one request may reach the next on the
// same connection: not its credentials (the second request is denied),
// not its headers (the upstream never sees them again), not its request
// id or policy decision (the access log tells each apart).
func TestSecurityRequestReuse(t *testing.T) {
	log, ep := newUpstreamLog(t)
	g := startGateway(t, securitySnapshot(ep))
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	send := func(req string) (int, http.Header) {
		t.Helper()
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	for round := 0; round < 3; round++ {
		r := fmt.Sprint(round)
		if st, _ := send("GET /secure/a HTTP/1.1\r\nHost: x\r\nX-Case: ok" + r + "\r\nX-Leak: from-the-first\r\nX-Request-Id: first-" + r + "\r\n" + secAuth + "\r\n"); st != 200 {
			t.Fatalf("round %s: authorised request: %d", r, st)
		}
		st, h := send("GET /secure/b HTTP/1.1\r\nHost: x\r\nX-Case: denied" + r + "\r\n\r\n")
		if st != http.StatusUnauthorized {
			t.Fatalf("round %s: request without credentials after an authorised one: %d, want 401", r, st)
		}
		if id := h.Get("X-Request-Id"); id == "" || id == "first-"+r {
			t.Errorf("round %s: the denied request answered with request id %q", r, id)
		}
		if st, _ := send("GET /inject/c HTTP/1.1\r\nHost: x\r\nX-Case: next" + r + "\r\n\r\n"); st != 200 {
			t.Fatalf("round %s: next request: %d", r, st)
		}
		got := log.get("next" + r)
		if got == nil {
			t.Fatalf("round %s: next request did not reach the upstream", r)
		}
		wantHeader("X-Leak")(t, got)
		wantHeader("Authorization", "Bearer gw")(t, got)
		if id := got.Header.Get("X-Request-Id"); id == "" || id == "first-"+r {
			t.Errorf("round %s: upstream got request id %q", r, id)
		}
		if log.get("denied"+r) != nil {
			t.Errorf("round %s: the denied request reached the upstream", r)
		}
	}
	var denied, allowed int
	for _, rec := range g.sink.all() {
		switch {
		case rec.Path == "/secure/b" && rec.ResponseCode == 401 && rec.PolicyOutcome == "denied":
			denied++
		case rec.Path == "/secure/a" && rec.ResponseCode == 200 && rec.PolicyOutcome == "allowed" && strings.HasPrefix(rec.RequestID, "first-"):
			allowed++
		}
	}
	if denied != 3 || allowed != 3 {
		t.Errorf("access log: %d denied and %d allowed records as expected, want 3 and 3: %+v", denied, allowed, g.sink.all())
	}
}

// TestSecurityWebSocketOptOut: an API or route with websocket: false
// answers a WebSocket upgrade 403 before any policy runs, and nothing
// reaches the upstream; a route's own setting wins over its API's; plain
// requests are served as usual.
func TestSecurityWebSocketOptOut(t *testing.T) {
	var upgrades atomic.Int64
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			io.WriteString(w, "plain")
			return
		}
		upgrades.Add(1)
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
	})
	ep := endpointOf(t, up)
	no, yes := false, true
	live := &ir.Route{Name: "live", Rules: []ir.Rule{{Path: ir.MustRegexp("/live(/.*)?")}}, WebSocket: &yes,
		Destinations: []ir.Destination{{Service: "default/up", Weight: 100}}}
	closed := api("closed", "/closed", live, catchAll("all", "up"))
	closed.WebSocket = &no
	closed.Policies = []*ir.Policy{basicAuthPolicy()}
	nows := &ir.Route{Name: "nows", Rules: []ir.Rule{{Path: ir.MustRegexp("/nows(/.*)?")}}, WebSocket: &no,
		Destinations: []ir.Destination{{Service: "default/up", Weight: 100}}}
	mixed := api("mixed", "/mixed", nows, catchAll("all", "up"))
	open := api("open", "/open", catchAll("all", "up"))
	g := startGateway(t, snapshot(1, []*ir.Service{svc("up", ep)}, closed, mixed, open))
	const ws = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	for _, c := range []struct {
		name, target, head string
		status             int
		upgraded           bool
	}{
		{"default: upgrades allowed", "/open/chat", ws, 101, true},
		{"API refuses, before its policy (no credentials)", "/closed/chat", ws, 403, false},
		{"API refuses, with credentials", "/closed/chat", ws + secAuth, 403, false},
		{"route allows on a refusing API", "/closed/live/x", ws + secAuth, 101, true},
		{"route refuses on an allowing API", "/mixed/nows/x", ws, 403, false},
		{"other routes of that API allow", "/mixed/other", ws, 101, true},
		{"plain request on a refusing route", "/mixed/nows/x", "", 200, false},
		{"plain request on a refusing API (policy runs)", "/closed/chat", "", 401, false},
	} {
		before := upgrades.Load()
		status, body := sendRaw(t, g.addr, "GET "+c.target+" HTTP/1.1\r\nHost: gw\r\n"+c.head+"\r\n")
		if status != c.status {
			t.Errorf("%s: %s got %d (%s), want %d", c.name, c.target, status, body, c.status)
		}
		if got := upgrades.Load() - before; (got == 1) != c.upgraded {
			t.Errorf("%s: %d upgrade requests reached the upstream", c.name, got)
		}
	}
}
