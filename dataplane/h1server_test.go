package dataplane

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

// rawExchange writes raw to a new connection to the gateway and returns
// the connection's reader.
func rawExchange(t *testing.T, g *gateway, raw string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

func readResp(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	return resp, string(b)
}

func TestH1Pipelining(t *testing.T) {
	up := echoUpstream(t, "a")
	g := startGateway(t, simple(t, up))
	_, br := rawExchange(t, g, "GET /one HTTP/1.1\r\nHost: gw\r\n\r\nHEAD /two HTTP/1.1\r\nHost: gw\r\n\r\nGET /three HTTP/1.1\r\nHost: gw\r\n\r\n")
	for _, p := range []string{"/one", "/two", "/three"} {
		method := "GET"
		if p == "/two" {
			method = "HEAD"
		}
		resp, body := readResp(t, br, method)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
		if method == "GET" && decodeEcho(t, body).URI != p {
			t.Fatalf("%s answered with %s", p, body)
		}
		if method == "HEAD" && body != "" {
			t.Fatalf("HEAD with body %q", body)
		}
	}
}

func TestH1ExpectContinue(t *testing.T) {
	up := echoUpstream(t, "a")
	g := startGateway(t, simple(t, up))
	c, br := rawExchange(t, g, "POST /up HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("interim response %q %v", line, err)
	}
	br.ReadString('\n')
	io.WriteString(c, "hello")
	resp, body := readResp(t, br, "POST")
	if resp.StatusCode != 200 || decodeEcho(t, body).Body != "hello" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

func TestH1HTTP10AndFraming(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("streamed"))
		w.(http.Flusher).Flush() // no Content-Length: chunked upstream
		w.Write([]byte(" body"))
	})
	g := startGateway(t, simple(t, up))
	// HTTP/1.0 without Host: answered close-delimited, then closed.
	_, br := rawExchange(t, g, "GET /x HTTP/1.0\r\n\r\n")
	resp, body := readResp(t, br, "GET")
	if resp.StatusCode != 200 || body != "streamed body" || !resp.Close {
		t.Fatalf("HTTP/1.0: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("connection left open after HTTP/1.0 response: %v", err)
	}
	// HTTP/1.1: chunked to the client, connection kept.
	_, br = rawExchange(t, g, "GET /x HTTP/1.1\r\nHost: gw\r\n\r\nGET /y HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
	resp, body = readResp(t, br, "GET")
	if body != "streamed body" || len(resp.TransferEncoding) == 0 || resp.Close {
		t.Fatalf("HTTP/1.1: %q te=%v close=%v", body, resp.TransferEncoding, resp.Close)
	}
	resp, _ = readResp(t, br, "GET")
	if !resp.Close {
		t.Fatal("Connection: close not honoured")
	}
}

func TestH1BadRequests(t *testing.T) {
	up := echoUpstream(t, "a")
	g := startGateway(t, simple(t, up))
	for name, c := range map[string]struct {
		raw    string
		status int
	}{
		"missing host":       {"GET / HTTP/1.1\r\n\r\n", 400},
		"two hosts":          {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		"te and cl":          {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		"bad cl":             {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", 400},
		"conflicting cl":     {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
		"unknown te":         {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		"space before colon": {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
		"folded header":      {"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  2\r\n\r\n", 400},
		"control char":       {"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400},
		"http/2.0 line":      {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
		"bad target":         {"GET nopath HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		"bad expect":         {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: magic\r\n\r\n", 417},
	} {
		_, br := rawExchange(t, g, c.raw)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d", name, resp.StatusCode, c.status)
		}
	}
}

func TestH1UpstreamCutMidBody(t *testing.T) {
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
				http.ReadRequest(bufio.NewReader(c))
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
			}()
		}
	}()
	a := ln.Addr().(*net.TCPAddr)
	s := simple(t, echoUpstream(t, "unused"))
	s.Services[0].Endpoints[0].Port = a.Port
	g := startGateway(t, s)
	resp, err := http.Get(g.url("/cut"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatal("a truncated upstream body reached the client as a complete response")
	}
	rec := g.sink.waitRecord(t, func(r accesslog.Record) bool { return r.Path == "/cut" })
	if !strings.Contains(rec.ResponseFlags, "UR") || rec.BytesSent != 10 {
		t.Errorf("record %+v", rec)
	}
}

func TestH1RequestContextHasLocalAddr(t *testing.T) {
	up := echoUpstream(t, "a")
	s := simple(t, up)
	s.Listeners[0].APIs[0].Policies = []*ir.Policy{{Name: "flexgw-test-localaddr", Binding: "default/la"}}
	g := startGateway(t, s)
	resp, _ := get(t, http.DefaultClient, g.url("/"))
	if got := resp.Header.Get("X-Local-Addr"); got != g.addr {
		t.Errorf("LocalAddrContextKey = %q, want %q", got, g.addr)
	}
}

// localAddrPolicy reports the request's local address, as net/http's
// context provides it.
type localAddrPolicy struct{}

func (localAddrPolicy) Name() string                   { return "flexgw-test-localaddr" }
func (localAddrPolicy) Validate(json.RawMessage) error { return nil }
func (localAddrPolicy) Build(policy.Env, *ir.Policy) (policy.Middleware, error) {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
				w.Header().Set("X-Local-Addr", a.String())
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

func init() { policy.Register(localAddrPolicy{}) }

func TestH2CHandoffCountsConnectionsOnce(t *testing.T) {
	up := echoUpstream(t, "a")
	var conns atomic.Int64
	var opened atomic.Int64
	g := startGateway(t, simple(t, up), func(o *Options) {
		o.Hooks.Conn = func(_ string, d int) {
			conns.Add(int64(d))
			if d > 0 {
				opened.Add(1)
			}
		}
	})
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: h2c}
	for i := 0; i < 3; i++ {
		resp, body := get(t, c, g.url("/h2c"))
		if resp.ProtoMajor != 2 || decodeEcho(t, body).URI != "/h2c" {
			t.Fatalf("h2c: %s %s", resp.Proto, body)
		}
	}
	if opened.Load() != 1 || conns.Load() != 1 {
		t.Errorf("opened %d, open %d; want 1 and 1", opened.Load(), conns.Load())
	}
	h2c.CloseIdleConnections()
	waitFor(t, "h2c connection closed", func() bool { return conns.Load() == 0 })
}

// TestH2TLSConnectionCounted: a TLS connection that negotiates h2 is one
// open connection while it is served by the h2 server, and none once the
// client closes it.
func TestH2TLSConnectionCounted(t *testing.T) {
	up := echoUpstream(t, "a")
	certPEM, keyPEM, pool := selfSigned(t)
	var conns atomic.Int64
	s := &ir.Snapshot{
		Version: 1,
		Listeners: []*ir.Listener{{Name: "https", Protocol: ir.HTTPS, Host: "127.0.0.1", Port: 0,
			TLS: &ir.ServerTLS{CertPEM: certPEM, KeyPEM: keyPEM}, APIs: []*ir.API{api("api", "/", catchAll("r", "up"))}}},
		Services: []*ir.Service{svc("up", endpointOf(t, up))},
	}
	g := startGateway(t, s, func(o *Options) { o.Hooks.Conn = func(_ string, d int) { conns.Add(int64(d)) } })
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	c := &http.Client{Transport: tr}
	for i := 0; i < 3; i++ {
		resp, body := get(t, c, "https://"+g.dp.Addr("127.0.0.1:0")+"/h2")
		if resp.ProtoMajor != 2 || decodeEcho(t, body).URI != "/h2" {
			t.Fatalf("h2: %s %s", resp.Proto, body)
		}
	}
	if conns.Load() != 1 {
		t.Errorf("open connections %d, want 1", conns.Load())
	}
	tr.CloseIdleConnections()
	waitFor(t, "h2 connection closed", func() bool { return conns.Load() == 0 })
}
