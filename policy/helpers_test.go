package policy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

// upstream is a real HTTP server that echoes what reached it.
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
		w.Header().Set("X-Upstream", "yes")
		w.Header().Set("Server", "upstream")
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

// recorder collects policy decisions as the data plane would.
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

// gateway is a real HTTP server running policies in order in front of a
// reverse proxy to the upstream: the built-in data plane in miniature.
type gateway struct {
	*httptest.Server
	rec *recorder
}

func mkPolicy(name string, cfg any) *ir.Policy {
	var raw json.RawMessage
	switch c := cfg.(type) {
	case string:
		raw = json.RawMessage(c)
	default:
		b, err := json.Marshal(cfg)
		if err != nil {
			panic(err)
		}
		raw = b
	}
	return &ir.Policy{Name: name, Binding: "default/" + name, Order: 50, Config: raw}
}

func testAPI() *ir.API { return &ir.API{Name: "api", Namespace: "default", BasePath: "/"} }

func newGateway(t *testing.T, env policy.Env, up *upstream, ps ...*ir.Policy) *gateway {
	t.Helper()
	target, _ := url.Parse(up.URL)
	var h http.Handler = httputil.NewSingleHostReverseProxy(target)
	if env.API == nil {
		env.API = testAPI()
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
	g := &gateway{rec: &recorder{}}
	inner := h
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.ServeHTTP(w, r.WithContext(policy.WithRecorder(r.Context(), g.rec)))
	}))
	t.Cleanup(g.Close)
	return g
}

type resp struct {
	status int
	header http.Header
	body   string
}

func (g *gateway) do(t *testing.T, method, path string, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, g.URL+path, nil)
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
	res, err := g.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, string(b)}
}

func (g *gateway) get(t *testing.T, path string, hdr ...string) resp {
	t.Helper()
	return g.do(t, http.MethodGet, path, hdr...)
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
	if err := json.Unmarshal([]byte(r.body), &b); err != nil {
		t.Fatalf("body %q is not the JSON error: %v", r.body, err)
	}
	if b.Policy != policyName || b.Error == "" {
		t.Fatalf("error body %+v, want policy %q and a message", b, policyName)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
