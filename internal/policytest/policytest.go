// Package policytest runs policies the way the built-in data plane does,
// in miniature, for the tests of policy and policy/native: a real upstream
// on loopback, a real gateway socket with the policies chained in front of
// a reverse proxy, the decisions recorded as the data plane records them,
// and one benchmark loop for policies measured per request.
package policytest

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
	"google.golang.org/grpc"
)

// Upstream is a real HTTP server that answers "hello from upstream" and
// keeps the count of requests and the last request's headers.
type Upstream struct {
	*httptest.Server
	mu   sync.Mutex
	hits int
	last http.Header
}

// NewUpstream starts an Upstream, closed when the test ends.
func NewUpstream(t testing.TB) *Upstream {
	u := &Upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.hits++
		u.last = r.Header.Clone()
		u.mu.Unlock()
		w.Header().Set("X-Upstream", "yes")
		w.Header().Set("Server", "upstream")
		_, _ = io.WriteString(w, "hello from upstream")
	}))
	t.Cleanup(u.Close)
	return u
}

// Hits is how many requests reached the upstream.
func (u *Upstream) Hits() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits
}

// LastHeader is the last request's headers as the upstream got them.
func (u *Upstream) LastHeader() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

// Recorder collects policy decisions ("policy=outcome") as the data plane
// would.
type Recorder struct {
	mu        sync.Mutex
	decisions []string
}

// Decide implements policy.Recorder.
func (r *Recorder) Decide(p, outcome string) {
	r.mu.Lock()
	r.decisions = append(r.decisions, p+"="+outcome)
	r.mu.Unlock()
}

// All is every decision so far, in order.
func (r *Recorder) All() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.decisions...)
}

// Policy is the policy name with configuration cfg (JSON text, or a value
// marshalled to JSON), bound as default/name at order 50.
func Policy(name string, cfg any) *ir.Policy {
	raw, ok := cfg.(string)
	if !ok {
		b, err := json.Marshal(cfg)
		if err != nil {
			panic(err)
		}
		raw = string(b)
	}
	return &ir.Policy{Name: name, Binding: "default/" + name, Order: 50, Config: json.RawMessage(raw)}
}

// API is the API the policies are built for unless Env names another.
func API() *ir.API { return &ir.API{Name: "api", Namespace: "default", BasePath: "/"} }

// Build is the middleware of policies ps, in order, around h.
func Build(t testing.TB, env policy.Env, h http.Handler, ps ...*ir.Policy) http.Handler {
	t.Helper()
	if env.API == nil {
		env.API = API()
	}
	for i := len(ps) - 1; i >= 0; i-- {
		d, ok := policy.Lookup(ps[i].Name)
		if !ok {
			t.Fatalf("policy %q not registered", ps[i].Name)
		}
		mw, err := d.Build(env, ps[i])
		if err != nil {
			t.Fatalf("build %s: %v", ps[i].Name, err)
		}
		h = mw(h)
	}
	return h
}

// Gateway is a real HTTP server running policies in order in front of a
// reverse proxy to an Upstream: the built-in data plane in miniature.
type Gateway struct {
	*httptest.Server
	// Rec has the decisions of the requests the gateway served.
	Rec *Recorder
}

// NewGateway starts a Gateway running ps in front of up, closed when the
// test ends.
func NewGateway(t testing.TB, env policy.Env, up *Upstream, ps ...*ir.Policy) *Gateway {
	t.Helper()
	target, _ := url.Parse(up.URL)
	h := Build(t, env, httputil.NewSingleHostReverseProxy(target), ps...)
	g := &Gateway{Rec: &Recorder{}}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(policy.WithRecorder(r.Context(), g.Rec)))
	}))
	t.Cleanup(g.Close)
	return g
}

// Resp is a response read whole.
type Resp struct {
	Status int
	Header http.Header
	Body   string
}

// Do sends method path with headers hdr (name, value, ...; "Host" sets the
// request's host) and reads the response.
func (g *Gateway) Do(t testing.TB, method, path string, hdr ...string) Resp {
	t.Helper()
	return send(t, g.Client(), method, g.URL+path, nil, hdr...)
}

// Send sends method url with body (nil for none; a reader without a
// known length goes chunked) and headers hdr (name, value, ...; "Host"
// sets the request's host) to any server — a gateway started by the test,
// a data plane, a stand-in — and reads the response whole.
func Send(t testing.TB, method, url string, body io.Reader, hdr ...string) Resp {
	t.Helper()
	return send(t, http.DefaultClient, method, url, body, hdr...)
}

func send(t testing.TB, c *http.Client, method, url string, body io.Reader, hdr ...string) Resp {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return Resp{res.StatusCode, res.Header, string(b)}
}

// Get is Do with GET.
func (g *Gateway) Get(t testing.TB, path string, hdr ...string) Resp {
	t.Helper()
	return g.Do(t, http.MethodGet, path, hdr...)
}

// WantStatus fails the test unless r has status want.
func WantStatus(t testing.TB, r Resp, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d (body %q)", r.Status, want, r.Body)
	}
}

// WantErrorBody fails the test unless r's body is the JSON error a policy
// answers with, naming policyName.
func WantErrorBody(t testing.TB, r Resp, policyName string) {
	t.Helper()
	var b struct{ Error, Policy string }
	if err := json.Unmarshal([]byte(r.Body), &b); err != nil {
		t.Fatalf("body %q is not the JSON error: %v", r.Body, err)
	}
	if b.Policy != policyName || b.Error == "" {
		t.Fatalf("error body %+v, want policy %q and a message", b, policyName)
	}
}

// BenchCase is one policy measured by Bench.
type BenchCase struct {
	Name   string
	Policy string // "" measures the handler alone
	Config any
	// Env is what the policy is built with; its API defaults to API().
	Env    policy.Env
	Header []string // name, value, ...
	Body   string
}

// Bench measures, per case, what the policy adds to one request on the
// built-in data plane: its middleware around a handler that reads the
// body, serving POST /orders from 127.0.0.1 with the case's headers and
// body. A warm-up request outside the timed loop fills caches and
// connections and must be admitted, so the loop measures the path a
// request the policy lets through takes.
func Bench(b *testing.B, cases []BenchCase) {
	for _, c := range cases {
		b.Run(c.Name, func(b *testing.B) {
			var ps []*ir.Policy
			if c.Policy != "" {
				ps = append(ps, Policy(c.Policy, c.Config))
			}
			h := Build(b, c.Env, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				if r.Body != nil {
					_, _ = io.Copy(io.Discard, r.Body)
				}
			}), ps...)
			body := []byte(c.Body)
			req := httptest.NewRequest(http.MethodPost, "http://gw/orders", nil)
			req.RemoteAddr = "127.0.0.1:40000"
			for i := 0; i+1 < len(c.Header); i += 2 {
				req.Header.Set(c.Header[i], c.Header[i+1])
			}
			run := func(w http.ResponseWriter, req *http.Request) {
				r := req.Clone(req.Context())
				if len(body) > 0 {
					r.Body = io.NopCloser(bytes.NewReader(body))
					r.ContentLength = int64(len(body))
				}
				h.ServeHTTP(w, r)
			}
			warm, wrec := httptest.NewRecorder(), &Recorder{}
			run(warm, req.WithContext(policy.WithRecorder(req.Context(), wrec)))
			d := wrec.All()
			if warm.Code != http.StatusOK || (c.Policy != "" && (len(d) == 0 || !strings.HasSuffix(d[len(d)-1], "="+policy.Allowed))) {
				b.Fatalf("%s: the benchmarked request is not admitted: status %d, decisions %v: %s", c.Name, warm.Code, d, warm.Body)
			}
			req = req.WithContext(policy.WithRecorder(req.Context(), NopRecorder{}))
			w := NewDiscardWriter()
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w.Reset()
				run(w, req)
			}
		})
	}
}

// NopRecorder drops decisions, so a benchmark measures the policy, not
// the recording.
type NopRecorder struct{}

// Decide implements policy.Recorder.
func (NopRecorder) Decide(string, string) {}

// DiscardWriter is a ResponseWriter that keeps nothing; Reset clears its
// headers between requests.
type DiscardWriter struct{ h http.Header }

// NewDiscardWriter is an empty DiscardWriter.
func NewDiscardWriter() *DiscardWriter { return &DiscardWriter{h: http.Header{}} }

// Header implements http.ResponseWriter.
func (w *DiscardWriter) Header() http.Header { return w.h }

// Write implements http.ResponseWriter.
func (w *DiscardWriter) Write(b []byte) (int, error) { return len(b), nil }

// WriteHeader implements http.ResponseWriter.
func (w *DiscardWriter) WriteHeader(int) {}

// Reset forgets the headers written so far.
func (w *DiscardWriter) Reset() { clear(w.h) }

// ServeGRPC serves a real gRPC server on a loopback port until the test
// ends, with the services register adds (the stand-in authorization and
// processing services of native-ext-*-flex), and returns its address.
func ServeGRPC(t testing.TB, register func(*grpc.Server)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	register(g)
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return ln.Addr().String()
}
