package native_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
	_ "github.com/flexgw/flexgw/policy/native"
)

// upstream is a real HTTP server counting requests and keeping the last
// request's headers.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	hits int
	last http.Header
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.hits++
		u.last = r.Header.Clone()
		u.mu.Unlock()
		_, _ = io.WriteString(w, "hello from upstream")
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) Hits() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits
}

func (u *upstream) LastHeader() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

type recorder struct {
	mu        sync.Mutex
	decisions []string
}

func (r *recorder) Decide(p, outcome string) {
	r.mu.Lock()
	r.decisions = append(r.decisions, p+"="+outcome)
	r.mu.Unlock()
}

func (r *recorder) All() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.decisions...)
}

func mkPolicy(name string, cfg any) *ir.Policy {
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

func testAPI() *ir.API { return &ir.API{Name: "api", Namespace: "default", BasePath: "/"} }

// gateway is one policy in front of a reverse proxy to the upstream, on a
// real socket: the built-in data plane in miniature.
type gateway struct {
	*httptest.Server
	rec *recorder
}

func newGateway(t *testing.T, up *upstream, p *ir.Policy) *gateway {
	t.Helper()
	target, _ := url.Parse(up.URL)
	d, ok := policy.Lookup(p.Name)
	if !ok {
		t.Fatalf("policy %q not registered", p.Name)
	}
	mw, err := d.Build(policy.Env{API: testAPI()}, p)
	if err != nil {
		t.Fatalf("build %s: %v", p.Name, err)
	}
	h := mw(httputil.NewSingleHostReverseProxy(target))
	g := &gateway{rec: &recorder{}}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(policy.WithRecorder(r.Context(), g.rec)))
	}))
	t.Cleanup(g.Close)
	return g
}

type resp struct {
	status int
	header http.Header
	body   string
}

func (g *gateway) get(t *testing.T, path string, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := g.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, string(b)}
}

func wantStatus(t *testing.T, r resp, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d (body %q)", r.status, want, r.body)
	}
}

func wantErrorBody(t *testing.T, r resp, policyName string) {
	t.Helper()
	var b struct{ Error, Policy string }
	if err := json.Unmarshal([]byte(r.body), &b); err != nil || b.Policy != policyName || b.Error == "" {
		t.Fatalf("body %q is not the policy's JSON error (%v)", r.body, err)
	}
}
