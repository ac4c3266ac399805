package dataplane

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/observe"
	"github.com/flexgw/flexgw/policy"
)

func TestPassiveEjectionAndRecovery(t *testing.T) {
	var badHits atomic.Int64
	bad := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		badHits.Add(1)
		w.WriteHeader(503)
	})
	good := echoUpstream(t, "good")
	service := svc("pool", endpointOf(t, bad), endpointOf(t, good))
	service.Outlier = &ir.OutlierDetection{ConsecutiveFailures: 3, BaseEjectionTime: 300 * time.Millisecond, MaxEjectionPercent: 50}
	var mu sync.Mutex
	var events []string
	g := startGateway(t, snapshot(1, []*ir.Service{service}, api("api", "/", catchAll("r", "pool"))), func(o *Options) {
		o.Hooks.EndpointHealth = func(s, e string, healthy bool) {
			mu.Lock()
			events = append(events, fmt.Sprintf("%s %v", e, healthy))
			mu.Unlock()
		}
	})
	badAddr := endpointOf(t, bad).Address()
	// Round robin alternates: after 3 failures on bad it is ejected.
	for i := 0; i < 6; i++ {
		get(t, http.DefaultClient, g.url("/"))
	}
	st := endpointStatus(g.dp, badAddr)
	if !st.Ejected || st.Healthy {
		// It may already have come back on a very slow machine; then the
		// hook history still shows the ejection.
		mu.Lock()
		ev := strings.Join(events, ";")
		mu.Unlock()
		if !strings.Contains(ev, badAddr+" false") {
			t.Fatalf("bad endpoint not ejected: %+v events %s", st, ev)
		}
	}
	before := badHits.Load()
	if endpointStatus(g.dp, badAddr).Ejected {
		resp, body := get(t, http.DefaultClient, g.url("/"))
		if resp.StatusCode != 200 || decodeEcho(t, body).Name != "good" {
			t.Fatalf("request during ejection: %d %s", resp.StatusCode, body)
		}
		if endpointStatus(g.dp, badAddr).Ejected && badHits.Load() != before {
			t.Fatalf("ejected endpoint still received traffic")
		}
	}
	waitFor(t, "endpoint back after ejection", func() bool { return endpointStatus(g.dp, badAddr).Healthy })
	waitFor(t, "traffic to the returned endpoint", func() bool {
		get(t, http.DefaultClient, g.url("/"))
		return badHits.Load() > before
	})
	mu.Lock()
	ev := strings.Join(events, ";")
	mu.Unlock()
	if !strings.Contains(ev, badAddr+" false") || !strings.Contains(ev, badAddr+" true") {
		t.Errorf("health hook events %s", ev)
	}
}

func endpointStatus(dp *DataPlane, addr string) observe.EndpointStatus {
	for _, e := range dp.Endpoints() {
		if e.Endpoint == addr {
			return e
		}
	}
	return observe.EndpointStatus{}
}

func TestActiveHealthCheck(t *testing.T) {
	var aHealthy atomic.Bool
	aHealthy.Store(true)
	var aHits atomic.Int64
	a := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			if !aHealthy.Load() {
				w.WriteHeader(500)
			}
			return
		}
		aHits.Add(1)
		io.WriteString(w, `{"Name":"a"}`)
	})
	b := upstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"Name":"b"}`) })
	service := svc("pool", endpointOf(t, a), endpointOf(t, b))
	// The timeout is generous: on a starved machine two checks of b that
	// each took over a couple of seconds marked b unhealthy too, and with
	// every endpoint unhealthy the pool spreads over all of them (panic
	// mode, as Envoy does), so requests reached a by design.
	service.HealthCheck = &ir.HealthCheck{Path: "/health", Interval: 30 * time.Millisecond, Timeout: 30 * time.Second, HealthyThreshold: 1, UnhealthyThreshold: 2}
	g := startGateway(t, snapshot(1, []*ir.Service{service}, api("api", "/", catchAll("r", "pool"))))
	aAddr, bAddr := endpointOf(t, a).Address(), endpointOf(t, b).Address()

	aHealthy.Store(false)
	// Healthy is what routing reads (active verdict and not ejected).
	waitFor(t, "a marked unhealthy, b healthy", func() bool {
		return !endpointStatus(g.dp, aAddr).Healthy && endpointStatus(g.dp, bAddr).Healthy
	})
	before := aHits.Load()
	for i := 0; i < 10; i++ {
		resp, body := get(t, http.DefaultClient, g.url("/"))
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s (a %+v, b %+v)", i, resp.StatusCode, body, endpointStatus(g.dp, aAddr), endpointStatus(g.dp, bAddr))
		}
		if name := decodeEcho(t, body).Name; name != "b" {
			t.Fatalf("request %d went to %q, want b (a %+v, b %+v)", i, name, endpointStatus(g.dp, aAddr), endpointStatus(g.dp, bAddr))
		}
	}
	if aHits.Load() != before {
		t.Fatal("unhealthy endpoint received traffic")
	}
	aHealthy.Store(true)
	waitFor(t, "a healthy again", func() bool { return endpointStatus(g.dp, aAddr).Healthy })
	for i := 0; i < 4; i++ {
		get(t, http.DefaultClient, g.url("/"))
	}
	if aHits.Load() == before {
		t.Error("recovered endpoint got no traffic")
	}
	st := endpointStatus(g.dp, aAddr)
	if !st.ActiveCheck || st.Service != "default/pool" {
		t.Errorf("status %+v", st)
	}
}

func TestHotReloadUnderLoad(t *testing.T) {
	ups := []*httptest.Server{echoUpstream(t, "one"), echoUpstream(t, "two"), echoUpstream(t, "three")}
	mk := func(v uint64) *ir.Snapshot {
		// Alternate endpoints, weights, routes and an extra API so each
		// version really differs (services are rebuilt on odd versions).
		a := svc("a", endpointOf(t, ups[v%3]))
		b := svc("b", endpointOf(t, ups[(v+1)%3]))
		r := &ir.Route{Name: fmt.Sprintf("r%d", v), Destinations: []ir.Destination{{Service: "default/a", Weight: 50}, {Service: "default/b", Weight: 50}}}
		apis := []*ir.API{api("api", "/", r)}
		if v%2 == 0 {
			apis = append(apis, api("extra", "/extra", catchAll("x", "b")))
		}
		return snapshot(v, []*ir.Service{a, b}, apis...)
	}
	g := startGateway(t, mk(1))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var okCount, failCount atomic.Int64
	var firstErr atomic.Value
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			defer c.CloseIdleConnections()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var resp *http.Response
				var err error
				if i%3 == 0 {
					resp, err = c.Post(g.url("/p"), "text/plain", strings.NewReader("body"))
				} else {
					resp, err = c.Get(g.url("/g"))
				}
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failCount.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					okCount.Add(1)
				}
			}
		}()
	}
	for v := uint64(2); v <= 60; v++ {
		if err := g.dp.Apply(mk(v)); err != nil {
			t.Fatalf("Apply v%d: %v", v, err)
		}
		n := okCount.Load()
		waitFor(t, "requests between reloads", func() bool { return okCount.Load() > n+2 || failCount.Load() > 0 })
	}
	close(stop)
	wg.Wait()
	if failCount.Load() != 0 {
		t.Fatalf("%d of %d requests failed during reloads; first: %v", failCount.Load(), okCount.Load()+failCount.Load(), firstErr.Load())
	}
	if okCount.Load() < 100 {
		t.Errorf("only %d requests ran", okCount.Load())
	}
}

func TestReloadKeepsUnchangedServicePools(t *testing.T) {
	up := echoUpstream(t, "a")
	g := startGateway(t, simple(t, up))
	get(t, http.DefaultClient, g.url("/"))
	before := g.dp.services["default/up"]
	s2 := simple(t, up)
	s2.Version = 2
	s2.Listeners[0].APIs[0].Routes[0].Name = "renamed"
	if err := g.dp.Apply(s2); err != nil {
		t.Fatal(err)
	}
	if g.dp.services["default/up"] != before {
		t.Error("unchanged service was rebuilt on reload")
	}
	// A bad snapshot is rejected and the old one keeps serving.
	bad := simple(t, up)
	bad.Listeners[0].APIs[0].Routes[0].Destinations[0].Service = "default/missing"
	if err := g.dp.Apply(bad); err == nil || !strings.Contains(err.Error(), "default/missing") {
		t.Fatalf("Apply(bad) = %v", err)
	}
	if resp, _ := get(t, http.DefaultClient, g.url("/")); resp.StatusCode != 200 {
		t.Fatalf("after rejected reload: %d", resp.StatusCode)
	}
	rec := g.sink.waitRecord(t, func(r accesslog.Record) bool { return r.Route == "renamed" })
	if rec.ResponseCode != 200 {
		t.Errorf("record %+v", rec)
	}
}

func TestWebSocketUpgrade(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want upgrade", 400)
			return
		}
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", base64.StdEncoding.EncodeToString(sum[:]))
		brw.Flush()
		// Echo every byte back (frames are opaque to the proxy).
		io.Copy(c, brw)
	})
	var conns atomic.Int64
	g := startGateway(t, simple(t, up), func(o *Options) {
		o.Hooks.Conn = func(_ string, d int) { conns.Add(int64(d)) }
	})
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	fmt.Fprintf(c, "GET /chat HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("handshake: %d %v", resp.StatusCode, resp.Header)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if got := resp.Header.Get("Sec-Websocket-Accept"); got != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Errorf("accept %q", got)
	}
	for _, msg := range []string{"hello", "world, again"} {
		io.WriteString(c, msg)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(br, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo %q: %q %v", msg, buf, err)
		}
	}
	c.Close()
	rec := g.sink.waitRecord(t, func(r accesslog.Record) bool { return r.Path == "/chat" })
	if rec.ResponseCode != 101 || rec.BytesReceived != int64(len("hello")+len("world, again")) {
		t.Errorf("record %+v", rec)
	}
	waitFor(t, "connection count back to 0", func() bool { return conns.Load() == 0 })
}

// selfSigned returns a PEM certificate and key for 127.0.0.1.
func selfSigned(t *testing.T) (certPEM, keyPEM string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "flexgw-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})), pool
}

func TestHTTP2OverTLSAndH2C(t *testing.T) {
	up := echoUpstream(t, "a")
	certPEM, keyPEM, pool := selfSigned(t)
	s := simple(t, up)
	s.Listeners = append(s.Listeners, &ir.Listener{
		Name: "https_127.0.0.1_0", Protocol: ir.HTTPS, Host: "127.0.0.2", Port: 0,
		TLS:  &ir.ServerTLS{CertPEM: certPEM, KeyPEM: keyPEM},
		APIs: s.Listeners[0].APIs,
	})
	g := startGateway(t, s)
	tlsAddr := g.dp.Addr("127.0.0.2:0")

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, body := get(t, &http.Client{Transport: tr}, "https://"+tlsAddr+"/tls")
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("TLS: %d %s", resp.StatusCode, resp.Proto)
	}
	if e := decodeEcho(t, body); e.Header.Get("X-Forwarded-Proto") != "https" || e.URI != "/tls" {
		t.Errorf("upstream saw %+v", e)
	}

	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	defer h2c.CloseIdleConnections()
	resp, body = get(t, &http.Client{Transport: h2c}, g.url("/h2c"))
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("h2c: %d %s", resp.StatusCode, resp.Proto)
	}
	id := decodeEcho(t, body).Header.Get("X-Request-Id")
	rec := g.sink.waitRecord(t, func(r accesslog.Record) bool { return r.RequestID == id })
	if rec.Protocol != "HTTP/2" {
		t.Errorf("protocol %q", rec.Protocol)
	}
}

func TestHTTP2Upstream(t *testing.T) {
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Proto, r.URL.RequestURI())
	}))
	up.Config.Protocols = new(http.Protocols)
	up.Config.Protocols.SetUnencryptedHTTP2(true)
	up.Start()
	defer up.Close()
	service := svc("h2", endpointOf(t, up))
	service.HTTP2 = true
	g := startGateway(t, snapshot(1, []*ir.Service{service}, api("api", "/", catchAll("r", "h2"))))
	resp, body := get(t, http.DefaultClient, g.url("/x?y=1"))
	if resp.StatusCode != 200 || body != "HTTP/2.0 /x?y=1" {
		t.Fatalf("h2 upstream: %d %q", resp.StatusCode, body)
	}
}

// testPolicy denies requests carrying X-Deny, for the policy-chain tests.
type testPolicy struct{}

func (testPolicy) Name() string                   { return "flexgw-test-deny" }
func (testPolicy) Validate(json.RawMessage) error { return nil }
func (testPolicy) Build(env policy.Env, p *ir.Policy) (policy.Middleware, error) {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Policy-Request-Id", r.Header.Get("X-Request-Id"))
			if r.Header.Get("X-Deny") != "" {
				policy.Decide(r, p.Name, policy.Denied)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"error":"denied"}`)
				return
			}
			policy.Decide(r, p.Name, policy.Allowed)
			w.Header().Set("X-Policy", "ran")
			next.ServeHTTP(w, r)
		})
	}, nil
}

func init() { policy.Register(testPolicy{}) }

func TestPolicyChain(t *testing.T) {
	up := echoUpstream(t, "a")
	s := snapshot(1, []*ir.Service{svc("up", endpointOf(t, up))}, api("api", "/api", catchAll("r", "up")))
	s.Listeners[0].APIs[0].Policies = []*ir.Policy{{
		Name: "flexgw-test-deny", Binding: "default/deny",
		Rules: []ir.Rule{{Path: ir.MustRegexp("/secret(/.*)?")}},
	}}
	g := startGateway(t, s)
	do := func(path string, deny bool) (*http.Response, string) {
		req, _ := http.NewRequest("GET", g.url(path), nil)
		if deny {
			req.Header.Set("X-Deny", "1")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	if resp, _ := do("/api/secret/x", true); resp.StatusCode != 401 {
		t.Errorf("denied: %d", resp.StatusCode)
	}
	rec := g.sink.waitRecord(t, func(r accesslog.Record) bool { return r.Path == "/api/secret/x" })
	if rec.ResponseCode != 401 || rec.Policy != "flexgw-test-deny" || rec.PolicyOutcome != "denied" || rec.BytesSent == 0 {
		t.Errorf("denied record %+v", rec)
	}
	// The policy saw the generated request id, the one in the access log.
	resp, _ := do("/api/secret/y", true)
	rec = g.sink.waitRecord(t, func(r accesslog.Record) bool { return r.Path == "/api/secret/y" })
	if got := resp.Header.Get("X-Policy-Request-Id"); got == "" || got != rec.RequestID {
		t.Errorf("policy saw x-request-id %q, access log has %q", got, rec.RequestID)
	}
	resp, body := do("/api/secret/ok", false)
	if resp.StatusCode != 200 || resp.Header.Get("X-Policy") != "ran" || decodeEcho(t, body).URI != "/secret/ok" {
		t.Errorf("allowed: %d %v", resp.StatusCode, resp.Header)
	}
	rec = g.sink.waitRecord(t, func(r accesslog.Record) bool { return r.Path == "/api/secret/ok" })
	if rec.PolicyOutcome != "allowed" || rec.ResponseCode != 200 {
		t.Errorf("allowed record %+v", rec)
	}
	// Outside the policy's rules it does not run, even with X-Deny.
	if resp, _ := do("/api/public", true); resp.StatusCode != 200 || resp.Header.Get("X-Policy") != "" {
		t.Errorf("rules not honoured: %d", resp.StatusCode)
	}
	// Routing comes first: an unknown path is 404, not 401.
	if resp, _ := do("/elsewhere", true); resp.StatusCode != 404 {
		t.Errorf("no route: %d", resp.StatusCode)
	}
}

func TestHooks(t *testing.T) {
	up := echoUpstream(t, "a")
	var mu sync.Mutex
	var infos []observe.RequestInfo
	var attempts []observe.AttemptInfo
	var statuses []int
	var timings []observe.Timings
	var conns atomic.Int64
	type ctxKey struct{}
	g := startGateway(t, simple(t, up), func(o *Options) {
		o.Hooks = observe.Hooks{
			Request: func(ctx context.Context, info observe.RequestInfo) (context.Context, observe.RequestDone) {
				mu.Lock()
				infos = append(infos, info)
				mu.Unlock()
				ctx = context.WithValue(ctx, ctxKey{}, "span-1")
				return ctx, func(rec *accesslog.Record, tm observe.Timings) {
					rec.TraceID = "trace-" + info.Header("X-Trace")
					mu.Lock()
					timings = append(timings, tm)
					mu.Unlock()
				}
			},
			UpstreamAttempt: func(ctx context.Context, set func(k, v string), info observe.AttemptInfo) observe.AttemptDone {
				set("Traceparent", fmt.Sprint(ctx.Value(ctxKey{})))
				mu.Lock()
				attempts = append(attempts, info)
				mu.Unlock()
				return func(status int, err error) {
					mu.Lock()
					statuses = append(statuses, status)
					mu.Unlock()
				}
			},
			Conn: func(l string, d int) { conns.Add(int64(d)) },
		}
	})
	req, _ := http.NewRequest("GET", g.url("/hooked"), nil)
	req.Header.Set("X-Trace", "abc")
	tr := &http.Transport{}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := decodeEcho(t, string(body)).Header.Get("Traceparent"); got != "span-1" {
		t.Errorf("attempt header %q", got)
	}
	rec := g.sink.waitRecord(t, func(r accesslog.Record) bool { return r.Path == "/hooked" })
	if rec.TraceID != "trace-abc" {
		t.Errorf("trace id %q", rec.TraceID)
	}
	if conns.Load() != 1 {
		t.Errorf("open connections %d, want 1", conns.Load())
	}
	tr.CloseIdleConnections()
	waitFor(t, "connection close hook", func() bool { return conns.Load() == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(infos) != 1 || infos[0].API != "default/api" || infos[0].Route != "r0" || infos[0].Listener != "http_127.0.0.1_0" || infos[0].Method != "GET" {
		t.Errorf("request info %+v", infos)
	}
	if len(attempts) != 1 || attempts[0].Service != "default/up" || attempts[0].Endpoint != endpointOf(t, up).Address() || attempts[0].Path != "/hooked" {
		t.Errorf("attempts %+v", attempts)
	}
	if len(statuses) != 1 || statuses[0] != 200 {
		t.Errorf("attempt statuses %v", statuses)
	}
	if len(timings) != 1 || timings[0].Service != "default/up" || timings[0].ResponseBytes != int64(len(body)) || timings[0].Total <= 0 {
		t.Errorf("timings %+v", timings)
	}
}

func TestResponseHopHeadersAndChunkedFraming(t *testing.T) {
	// A raw upstream so the exact framing and headers are under control.
	a, _ := testutil.RawUpstream(t, func(testutil.RawRequest) string {
		return "HTTP/1.1 200 OK\r\nconnection: keep-alive, X-Hop\r\nX-Hop: secret\r\nx-end: kept\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"
	})
	s := snapshot(1, []*ir.Service{svc("raw", ir.Endpoint{Host: "127.0.0.1", Port: a.Port})}, api("api", "/", catchAll("r", "raw")))
	g := startGateway(t, s)
	for i := 0; i < 3; i++ {
		resp, body := get(t, http.DefaultClient, g.url("/"))
		if body != "hello, world" || resp.Header.Get("X-Hop") != "" || resp.Header.Get("X-End") != "kept" {
			t.Fatalf("got %q %v", body, resp.Header)
		}
	}
}

func TestCircuitBreakerOverflow(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	})
	service := svc("cb", endpointOf(t, up))
	service.CircuitBreaker = &ir.CircuitBreaker{MaxRequests: 1}
	g := startGateway(t, snapshot(1, []*ir.Service{service}, api("api", "/", catchAll("r", "cb"))))
	done := make(chan string, 1)
	go func() {
		resp, err := http.Get(g.url("/hold"))
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(b)
	}()
	<-entered
	resp, body := get(t, http.DefaultClient, g.url("/more"))
	close(release)
	if resp.StatusCode != 503 || decodeError(t, body).Status != 503 {
		t.Fatalf("over the limit: %d %s", resp.StatusCode, body)
	}
	if got := <-done; got != "ok" {
		t.Fatalf("held request: %q", got)
	}
	rec := g.sink.waitRecord(t, func(r accesslog.Record) bool { return r.Path == "/more" })
	if rec.ResponseFlags != "UO" {
		t.Errorf("flags %q", rec.ResponseFlags)
	}
	if resp, _ := get(t, http.DefaultClient, g.url("/after")); resp.StatusCode != 200 {
		t.Errorf("after release: %d", resp.StatusCode)
	}
}

func TestApplyAddsAndRemovesListeners(t *testing.T) {
	up := echoUpstream(t, "a")
	s := simple(t, up)
	second := &ir.Listener{Name: "http_127.0.0.3_0", Protocol: ir.HTTP, Host: "127.0.0.3", Port: 0, APIs: s.Listeners[0].APIs}
	s.Listeners = append(s.Listeners, second)
	g := startGateway(t, s)
	addr2 := g.dp.Addr("127.0.0.3:0")
	if resp, _ := get(t, http.DefaultClient, "http://"+addr2+"/"); resp.StatusCode != 200 {
		t.Fatalf("second listener: %d", resp.StatusCode)
	}
	s2 := simple(t, up)
	s2.Version = 2
	if err := g.dp.Apply(s2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "removed listener closed", func() bool {
		c, err := net.Dial("tcp", addr2)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	if resp, _ := get(t, http.DefaultClient, g.url("/")); resp.StatusCode != 200 {
		t.Fatalf("kept listener: %d", resp.StatusCode)
	}
}

func TestHTTPSUpstream(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls=%v host=%s uri=%s", r.TLS != nil, r.Host, r.RequestURI)
	}))
	defer up.Close()
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw}))
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(up.URL, "https://"))
	var p int
	fmt.Sscan(port, &p)
	service := &ir.Service{Name: "secure", Namespace: "default", Protocol: ir.HTTPS,
		Endpoints: []ir.Endpoint{{Host: host, Port: p}}, LB: ir.RoundRobin,
		TLS: &ir.UpstreamTLS{CAPEM: caPEM}}
	g := startGateway(t, snapshot(1, []*ir.Service{service}, api("api", "/", catchAll("r", "secure"))))
	for i := 0; i < 2; i++ { // the second reuses the pooled TLS connection
		resp, body := get(t, http.DefaultClient, g.url("/s?q=1"))
		if resp.StatusCode != 200 || body != "tls=true host="+host+":"+port+" uri=/s?q=1" {
			t.Fatalf("https upstream: %d %q", resp.StatusCode, body)
		}
	}
	// An untrusted certificate fails the handshake: 502 UF.
	service2 := *service
	service2.TLS = &ir.UpstreamTLS{}
	if err := g.dp.Apply(snapshot(2, []*ir.Service{&service2}, api("api", "/", catchAll("r", "secure")))); err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, http.DefaultClient, g.url("/s"))
	if resp.StatusCode != 502 {
		t.Fatalf("untrusted upstream: %d %s", resp.StatusCode, body)
	}
}

func TestServiceWithoutEndpoints503UH(t *testing.T) {
	g := startGateway(t, snapshot(1, []*ir.Service{svc("empty")}, api("api", "/", catchAll("r", "empty"))))
	resp, body := get(t, http.DefaultClient, g.url("/"))
	if resp.StatusCode != 503 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	id := decodeError(t, body).RequestID
	if rec := g.sink.waitRecord(t, func(r accesslog.Record) bool { return r.RequestID == id }); rec.ResponseFlags != "UH" {
		t.Errorf("flags %q", rec.ResponseFlags)
	}
}
