package dataplane

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
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

// memSink keeps copies of access-log records for assertions.
type memSink struct {
	mu   sync.Mutex
	recs []accesslog.Record
}

func (m *memSink) Write(r *accesslog.Record) {
	m.mu.Lock()
	m.recs = append(m.recs, *r)
	m.mu.Unlock()
}

func (m *memSink) all() []accesslog.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]accesslog.Record(nil), m.recs...)
}

// waitRecord polls until a record matching f was written.
func (m *memSink) waitRecord(t *testing.T, f func(accesslog.Record) bool) accesslog.Record {
	t.Helper()
	var found accesslog.Record
	waitFor(t, "access-log record", func() bool {
		for _, r := range m.all() {
			if f(r) {
				found = r
				return true
			}
		}
		return false
	})
	return found
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// gateway is a running data plane under test.
type gateway struct {
	dp   *DataPlane
	sink *memSink
	addr string // bound address of the first listener
}

func startGateway(t *testing.T, s *ir.Snapshot, mod ...func(*Options)) *gateway {
	t.Helper()
	sink := &memSink{}
	opts := Options{GatewayID: "gw-test", Logger: testLogger(t), AccessLog: sink}
	for _, m := range mod {
		m(&opts)
	}
	dp := New(opts)
	if err := dp.Apply(s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = dp.Shutdown(ctx)
	})
	g := &gateway{dp: dp, sink: sink}
	if len(s.Listeners) > 0 {
		g.addr = dp.Addr(s.Listeners[0].Address())
	}
	return g
}

func (g *gateway) url(path string) string { return "http://" + g.addr + path }

// upstream starts a real HTTP server answering with h.
func upstream(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// echoUpstream answers with a JSON description of what it received.
func echoUpstream(t *testing.T, name string) *httptest.Server {
	return upstream(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echo{
			Name: name, Method: r.Method, URI: r.RequestURI, Host: r.Host,
			Header: r.Header, Body: string(body),
		})
	})
}

type echo struct {
	Name   string
	Method string
	URI    string
	Host   string
	Header http.Header
	Body   string
}

func endpointOf(t *testing.T, s *httptest.Server) ir.Endpoint {
	t.Helper()
	host, port, err := net.SplitHostPort(strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	var p int
	fmt.Sscan(port, &p)
	return ir.Endpoint{Host: host, Port: p}
}

func svc(name string, eps ...ir.Endpoint) *ir.Service {
	return &ir.Service{Name: name, Namespace: "default", Protocol: ir.HTTP, Endpoints: eps, LB: ir.RoundRobin, ConnectTimeout: 2 * time.Second}
}

func catchAll(name string, services ...string) *ir.Route {
	r := &ir.Route{Name: name}
	for _, s := range services {
		r.Destinations = append(r.Destinations, ir.Destination{Service: "default/" + s, Weight: 100})
	}
	return r
}

func api(name, base string, routes ...*ir.Route) *ir.API {
	return &ir.API{Name: name, Namespace: "default", BasePath: base, Routes: routes}
}

// snapshot puts apis on one listener at 127.0.0.1:0.
func snapshot(version uint64, services []*ir.Service, apis ...*ir.API) *ir.Snapshot {
	return &ir.Snapshot{
		Version:   version,
		Listeners: []*ir.Listener{{Name: "http_127.0.0.1_0", Protocol: ir.HTTP, Host: "127.0.0.1", Port: 0, APIs: apis}},
		Services:  services,
	}
}

// simple is one API at "/" with one catch-all route to one service.
func simple(t *testing.T, up *httptest.Server) *ir.Snapshot {
	return snapshot(1, []*ir.Service{svc("up", endpointOf(t, up))}, api("api", "/", catchAll("r0", "up")))
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp, string(b)
}

func decodeEcho(t *testing.T, body string) echo {
	t.Helper()
	var e echo
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("decode echo %q: %v", body, err)
	}
	return e
}

// errorBody is the gateway's JSON error.
type errorBody struct {
	Error     string `json:"error"`
	Status    int    `json:"status"`
	RequestID string `json:"request_id"`
}

func decodeError(t *testing.T, body string) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	return e
}

// freeAddr returns a loopback address nothing listens on (bound and
// closed), for refused-connection tests.
func freeAddr(t *testing.T) ir.Endpoint {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().(*net.TCPAddr)
	l.Close()
	return ir.Endpoint{Host: "127.0.0.1", Port: a.Port}
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func testLoggerB() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
