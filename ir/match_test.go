package ir

import (
	"net/http"
	"regexp"
	"testing"
)

func TestStripBasePath(t *testing.T) {
	for _, tc := range []struct {
		base, path, rest string
		ok               bool
	}{
		{"/", "/a/b", "/a/b", true},
		{"", "/a", "/a", true},
		{"/orders", "/orders", "", true},
		{"/orders", "/orders/", "/", true},
		{"/orders", "/orders/1", "/1", true},
		{"/orders", "/ordersX", "", false},
		{"/orders", "/other", "", false},
		{"/api/json", "/api/json/users/1", "/users/1", true},
	} {
		rest, ok := StripBasePath(tc.base, tc.path)
		if rest != tc.rest || ok != tc.ok {
			t.Errorf("StripBasePath(%q, %q) = %q, %v; want %q, %v", tc.base, tc.path, rest, ok, tc.rest, tc.ok)
		}
	}
}

func TestRewritePath(t *testing.T) {
	rule := func(path string) *Rule { return &Rule{Path: MustRegexp(path)} }
	for _, tc := range []struct {
		name                     string
		base                     string
		rule                     *Rule
		dest, svc, req, upstream string
	}{
		{"no rule, root base", "/", nil, "", "", "/orders/1", "/orders/1"},
		{"base stripped", "/orders", nil, "", "", "/orders/1", "/1"},
		{"base itself", "/orders", nil, "", "", "/orders", "/"},
		{"base with slash", "/orders", nil, "", "", "/orders/", "/"},
		{"query kept", "/orders", nil, "", "", "/orders/1?a=b&c", "/1?a=b&c"},
		{"empty query dropped", "/orders", nil, "", "", "/orders/1?", "/1"},
		{"flex doc capture", "/", rule("/api(/.*)"), "", "", "/api/orders", "/orders"},
		{"flex doc destinationPath", "/", rule("/api(/users/.*)"), "/v1/apps", "", "/api/users/7", "/v1/apps/users/7"},
		{"destinationPath trailing slash", "/", nil, "/v1/", "", "/x", "/v1/x"},
		{"service base path first", "/", nil, "/v1", "/svc", "/x?q=1", "/svc/v1/x?q=1"},
		{"service base only", "/orders", nil, "", "/svc", "/orders", "/svc"},
		{"several captures concatenated", "/", rule("/(a)/[^/]+(/.*)"), "", "", "/a/skip/rest", "/a/rest"},
		{"capture without leading slash", "/", rule("/api/(.*)"), "/v1", "", "/api/orders", "/v1/orders"},
		{"capture empty", "/", rule("/api(/.*)?"), "", "", "/api", "/"},
		{"capture empty with dest", "/", rule("/api(/.*)?"), "/v1", "", "/api", "/v1"},
		{"no capture groups keeps path", "/", rule("/api/.*"), "/v1", "", "/api/x", "/v1/api/x"},
		{"non-capturing group", "/", rule("/api(?:/.*)"), "", "", "/api/x", "/api/x"},
		{"capture relative to base", "/shop", rule("/api(/.*)"), "", "", "/shop/api/x?y", "/x?y"},
		{"capture on base itself", "/shop", rule("(/.*)"), "/d", "", "/shop", "/d/"},
		{"rule not matching falls back", "/", rule("/api(/.*)"), "", "", "/other", "/other"},
	} {
		got := RewritePath(tc.base, tc.rule, tc.dest, tc.svc, tc.req)
		if got != tc.upstream {
			t.Errorf("%s: RewritePath(%q, %v, %q, %q, %q) = %q, want %q", tc.name, tc.base, tc.rule, tc.dest, tc.svc, tc.req, got, tc.upstream)
		}
	}
}

func TestRuleMatches(t *testing.T) {
	r := Rule{
		Path:    MustRegexp("/api(/.*)"),
		Methods: MustRegexp("GET|POST"),
		Host:    MustRegexp(`.*\.example\.com`),
		Headers: []HeaderMatch{{Name: "X-Version", Value: MustRegexp("v[12]")}},
	}
	h := http.Header{}
	h.Add("x-version", "v9")
	h.Add("x-version", "v2")
	for _, tc := range []struct {
		name, method, host, path string
		header                   http.Header
		want                     bool
	}{
		{"all match", "GET", "shop.example.com", "/api/x", h, true},
		{"host port ignored", "POST", "shop.example.com:8081", "/api/x", h, true},
		{"method anchored", "GETX", "shop.example.com", "/api/x", h, false},
		{"path anchored", "GET", "shop.example.com", "/v2/api/x", h, false},
		{"host anchored", "GET", "shop.example.com.evil", "/api/x", h, false},
		{"header missing", "GET", "shop.example.com", "/api/x", http.Header{}, false},
		{"header value mismatch", "GET", "a.example.com", "/api/x", http.Header{"X-Version": {"v3"}}, false},
	} {
		if got := r.Matches(tc.method, tc.host, tc.path, tc.header); got != tc.want {
			t.Errorf("%s: Matches = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRouteMatch(t *testing.T) {
	rt := &Route{Rules: []Rule{{Methods: MustRegexp("GET")}, {Path: MustRegexp("/admin(/.*)")}}}
	if r, ok := rt.Match("GET", "h", "/x", "", nil); !ok || r != &rt.Rules[0] {
		t.Errorf("first rule should match GET")
	}
	if r, ok := rt.Match("POST", "h", "/admin/x", "", nil); !ok || r != &rt.Rules[1] {
		t.Errorf("second rule should match /admin/x (rules are OR'd)")
	}
	if _, ok := rt.Match("POST", "h", "/x", "", nil); ok {
		t.Errorf("no rule should match POST /x")
	}
	all := &Route{}
	if r, ok := all.Match("DELETE", "", "/anything", "", nil); !ok || r != nil {
		t.Errorf("a route without rules matches everything with a nil rule")
	}
}

func TestHostWithoutPort(t *testing.T) {
	for in, want := range map[string]string{
		"example.com":      "example.com",
		"example.com:8080": "example.com",
		"[::1]:80":         "[::1]",
		"[::1]":            "[::1]",
		"host:abc":         "host:abc",
		"":                 "",
	} {
		if got := HostWithoutPort(in); got != want {
			t.Errorf("HostWithoutPort(%q) = %q, want %q", in, got, want)
		}
	}
	p := HostPattern(MustRegexp(`a\.com`))
	re := regexp.MustCompile(p)
	if !re.MatchString("a.com:80") || !re.MatchString("a.com") || re.MatchString("b.a.com") {
		t.Errorf("HostPattern = %q", p)
	}
}

func TestDestinationPathFor(t *testing.T) {
	rt := &Route{DestinationPath: "/route"}
	if got := rt.DestinationPathFor(Destination{}); got != "/route" {
		t.Errorf("got %q", got)
	}
	if got := rt.DestinationPathFor(Destination{DestinationPath: "/own"}); got != "/own" {
		t.Errorf("got %q", got)
	}
}

// RewritePath and Route.Match run on every request of the built-in data
// plane: go test -bench . -benchmem ./ir
func BenchmarkRewritePath(b *testing.B) {
	rule := &Rule{Path: MustRegexp("/api(/.*)")}
	b.ReportAllocs()
	for b.Loop() {
		_ = RewritePath("/shop", rule, "/v1", "/svc", "/shop/api/orders/42?x=1")
	}
}

func BenchmarkRewritePathNoCapture(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = RewritePath("/shop", nil, "/v1", "", "/shop/orders/42?x=1")
	}
}

func BenchmarkRouteMatch(b *testing.B) {
	rt := &Route{Rules: []Rule{
		{Path: MustRegexp("/admin(/.*)"), Methods: MustRegexp("POST")},
		{Path: MustRegexp("/api(/.*)"), Methods: MustRegexp("GET|HEAD"), Headers: []HeaderMatch{{Name: "X-Version", Value: MustRegexp("v[12]")}}},
	}}
	h := http.Header{"X-Version": {"v2"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := rt.Match("GET", "example.com:8080", "/api/orders/42", "", h); !ok {
			b.Fatal("no match")
		}
	}
}
