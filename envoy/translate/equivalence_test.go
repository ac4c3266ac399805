package translate

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/flexgw/flexgw/ir"
)

// request is one test request for the routing-equivalence test.
type request struct {
	method, host, path string
	header             http.Header
	// random is Envoy's per-request random value (0..999,999 here), which
	// runtime_fraction matches against; the built-in side picks the
	// destination from the same value.
	random uint32
}

// outcome is where a request goes: the destination services and the
// upstream path, or 404.
type outcome struct {
	clusters string
	path     string
	status   int
	// location is a redirect's Location; host the Host header sent
	// upstream when the route rewrites it; mirrors the clusters that get
	// a copy.
	location, host, mirrors string
}

// envoyRoute emulates Envoy's route matching and regex_rewrite over the
// translated route table (RE2 semantics are Go's regexp semantics), a
// stand-in for running Envoy, which cannot be installed here.
func envoyRoute(t *testing.T, rc *routev3.RouteConfiguration, req request) outcome {
	t.Helper()
	path, query, hasQuery := strings.Cut(req.path, "?")
	full := func(re string) *regexp.Regexp { return cachedRegexp("^(?:" + re + ")$") }
	for _, r := range rc.VirtualHosts[0].Routes {
		m := r.Match
		ok := false
		switch {
		case m.GetPrefix() != "":
			ok = strings.HasPrefix(path, m.GetPrefix())
		case m.GetPath() != "":
			ok = path == m.GetPath()
		case m.GetPathSeparatedPrefix() != "":
			p := m.GetPathSeparatedPrefix()
			ok = path == p || strings.HasPrefix(path, p+"/")
		case m.GetSafeRegex() != nil:
			ok = full(m.GetSafeRegex().Regex).MatchString(path)
		}
		if f := m.GetRuntimeFraction(); f != nil && ok {
			ok = req.random < f.GetDefaultValue().GetNumerator()
		}
		for _, h := range m.Headers {
			if !ok {
				break
			}
			var v string
			switch h.Name {
			case ":method":
				v = req.method
			case ":authority":
				v = req.host
			default:
				v = req.header.Get(h.Name)
				if v == "" {
					ok = false
					continue
				}
			}
			ok = full(h.GetStringMatch().GetSafeRegex().Regex).MatchString(v)
		}
		for _, q := range m.QueryParameters {
			if !ok {
				break
			}
			v, found := ir.QueryParam(query, q.Name)
			ok = found && full(q.GetStringMatch().GetSafeRegex().Regex).MatchString(v)
		}
		if !ok {
			continue
		}
		if dr := r.GetDirectResponse(); dr != nil {
			return outcome{status: int(dr.Status)}
		}
		if rd := r.GetRedirect(); rd != nil {
			return outcome{status: envoyRedirectStatus[rd.ResponseCode], location: envoyLocation(rd, req.host, path, query, hasQuery)}
		}
		a := r.GetRoute()
		var cs []string
		if c := a.GetCluster(); c != "" {
			cs = []string{c}
		}
		for _, w := range a.GetWeightedClusters().GetClusters() {
			cs = append(cs, w.Name)
		}
		up := path
		if rw := a.GetRegexRewrite(); rw != nil {
			sub := regexp.MustCompile(`\\(\d)`).ReplaceAllString(rw.Substitution, `$${$1}`)
			up = cachedRegexp(rw.Pattern.Regex).ReplaceAllString(path, sub)
		}
		if hasQuery && query != "" {
			up += "?" + query
		}
		var ms []string
		for _, m := range a.GetRequestMirrorPolicies() {
			ms = append(ms, m.Cluster)
		}
		return outcome{clusters: strings.Join(cs, ","), path: up, status: 200, host: a.GetHostRewriteLiteral(), mirrors: strings.Join(ms, ",")}
	}
	return outcome{status: 404}
}

var envoyRedirectStatus = map[routev3.RedirectAction_RedirectResponseCode]int{
	routev3.RedirectAction_MOVED_PERMANENTLY: 301, routev3.RedirectAction_FOUND: 302, routev3.RedirectAction_SEE_OTHER: 303,
	routev3.RedirectAction_TEMPORARY_REDIRECT: 307, routev3.RedirectAction_PERMANENT_REDIRECT: 308,
}

// envoyLocation builds a redirect's Location as Envoy's newUri does for
// a plain-HTTP request: the scheme and host swapped when set, the
// request's port dropped when a port is set (or when the scheme changes
// and it was :80), the path rewritten by regex_rewrite, the query kept.
func envoyLocation(rd *routev3.RedirectAction, host, path, query string, hasQuery bool) string {
	scheme := "http"
	if s := rd.GetSchemeRedirect(); s != "" {
		scheme = s
	}
	port := ""
	if rd.PortRedirect != 0 {
		port = fmt.Sprintf(":%d", rd.PortRedirect)
	}
	h := rd.HostRedirect
	if h == "" {
		h = host
		if i := strings.LastIndexByte(host, ':'); i >= 0 {
			if port != "" || (scheme != "http" && host[i:] == ":80") {
				h = host[:i]
			}
		}
	}
	p := path
	if rw := rd.GetRegexRewrite(); rw != nil {
		sub := regexp.MustCompile(`\\(\d)`).ReplaceAllString(rw.Substitution, `$${$1}`)
		p = cachedRegexp(rw.Pattern.Regex).ReplaceAllString(path, sub)
	}
	if hasQuery && query != "" {
		p += "?" + query
	}
	return scheme + "://" + h + port + p
}

var regexpCache sync.Map

// cachedRegexp compiles re once for all the equivalence tests.
func cachedRegexp(re string) *regexp.Regexp {
	if v, ok := regexpCache.Load(re); ok {
		return v.(*regexp.Regexp)
	}
	c := regexp.MustCompile(re)
	regexpCache.Store(re, c)
	return c
}

// irRoute is the built-in data plane's routing, from ir's own helpers.
func irRoute(s *ir.Snapshot, l *ir.Listener, req request) outcome {
	path, query, _ := strings.Cut(req.path, "?")
	for _, a := range l.APIs {
		rest, ok := ir.StripBasePath(a.BasePath, path)
		if !ok {
			continue
		}
		for _, r := range a.Routes {
			rule, ok := r.Match(req.method, req.host, ir.MatchPath(rest), query, req.header)
			if !ok {
				continue
			}
			if rd := r.Redirect; rd != nil {
				return outcome{status: rd.StatusCode, location: rd.Location("http", req.host, a.BasePath, rule, req.path)}
			}
			if d := r.DirectResponse; d != nil {
				return outcome{status: d.Status}
			}
			prefix := func(d ir.Destination) string {
				if d.DirectResponse != nil {
					return "direct"
				}
				return strings.TrimRight(s.Service(d.Service).BasePath, "/") + strings.TrimRight(r.DestinationPathFor(d), "/")
			}
			var cs []string
			same := true
			var total uint64
			for _, d := range r.Destinations {
				cs = append(cs, ClusterName(d.Service))
				same = same && prefix(d) == prefix(r.Destinations[0])
				total += uint64(d.Weight)
			}
			chosen := r.Destinations[0]
			if !same {
				// Weighted choice by the request's random value.
				var cum uint64
				for _, d := range r.Destinations {
					cum += uint64(d.Weight)
					if uint64(req.random) < cum*1_000_000/total {
						chosen = d
						break
					}
				}
				cs = []string{ClusterName(chosen.Service)}
			}
			if chosen.DirectResponse != nil {
				return outcome{status: chosen.DirectResponse.Status}
			}
			up := ir.RewritePath(a.BasePath, rule, r.DestinationPathFor(chosen), s.Service(chosen.Service).BasePath, req.path)
			if upPath, _, _ := strings.Cut(up, "?"); !ir.DotSegmentFree(upPath) {
				return outcome{status: 400} // the built-in refuses a rewrite that leaves its prefix
			}
			var ms []string
			for _, m := range r.Mirrors {
				ms = append(ms, ClusterName(m.Service))
			}
			return outcome{clusters: strings.Join(cs, ","), path: up, status: 200, host: r.HostRewrite, mirrors: strings.Join(ms, ",")}
		}
		return outcome{status: 404}
	}
	return outcome{status: 404}
}

func TestRoutingMatchesBuiltinDataPlane(t *testing.T) {
	s := basicSnapshot()
	res, err := Translate(s, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	tenant := http.Header{"X-Tenant": {"acme"}}
	reqs := []request{
		{"POST", "shop.example.com:8080", "/api/orders/x", tenant, 0},
		{"PUT", "shop.example.com", "/api/orders", tenant, 0},
		{"PUT", "shop.example.com", "/api/orders/", tenant, 0},
		{"POST", "other.example.com", "/api/orders/x", tenant, 0},
		{"POST", "shop.example.com", "/api/orders/x", nil, 0},
		{"GET", "any", "/api/orders/items/42", nil, 0},
		{"GET", "any", "/api/orders/items/42?q=1&r=2", nil, 0},
		{"GET", "any", "/api/orders/all?x=1", nil, 0},
		{"GET", "any", "/api/orders/nothing", nil, 0},
		{"GET", "any", "/api/orders", nil, 0},
		{"GET", "any", "/api/ordersX", nil, 0},
		{"GET", "any", "/", nil, 0},
		{"DELETE", "any", "/users/7?full=true", nil, 0},
	}
	for _, req := range reqs {
		got := envoyServe(t, res, req)
		want := builtinServe(s, req, testOpts.EscapedSlashes)
		if got != want {
			t.Errorf("%s %s%s: envoy %+v, built-in %+v", req.method, req.host, req.path, got, want)
		}
	}
}

func TestRoutingMatchesBuiltinDataPlaneConfigDirs(t *testing.T) {
	cases := map[string][]request{
		"resource-model": {
			{"GET", "h", "/flights", nil, 0},
			{"GET", "h", "/flights/12?seat=1", nil, 0},
			{"DELETE", "h", "/flights/12", nil, 0},
			{"GET", "h", "/admin/users", nil, 0},
			{"GET", "h", "/admin", nil, 0},
			{"GET", "h", "/other", nil, 0},
		},
		"inline": {
			{"GET", "h", "/api/orders/items/1", nil, 0},
			{"POST", "h", "/api/orders/items/1", nil, 0},
			{"POST", "h", "/api/orders/search", http.Header{"X-Tenant": {"acme"}}, 0},
			{"POST", "h", "/api/orders/search", http.Header{"X-Tenant": {"ACME"}}, 0},
			{"GET", "shop.example.com:8081", "/api/orders", nil, 0},
			{"GET", "shop.example.com", "/api/orders/x?y=z", nil, 0},
			{"GET", "h", "/web", nil, 0},
			{"GET", "h", "/web/index.html", nil, 0},
			{"GET", "h", "/webx", nil, 0},
		},
		"weighted-paths": {
			{"GET", "h", "/flights/1", nil, 0},
			{"GET", "h", "/flights/1", nil, 699_999},
			{"GET", "h", "/flights/1", nil, 700_000},
			{"GET", "h", "/flights/1", nil, 899_999},
			{"GET", "h", "/flights/1", nil, 900_000},
			{"GET", "h", "/flights/1?x=1", nil, 999_999},
			{"GET", "h", "/flights", nil, 10},
			{"GET", "h", "/flights", nil, 950_000},
			{"GET", "h", "/flights", nil, 750_000},
		},
		"route-actions": {
			{"GET", "h:8081", "/shop/secure/a?x=1", nil, 0},
			{"GET", "h", "/shop/secure", nil, 0},
			{"GET", "h:8081", "/shop/old/a/b?x=1", nil, 0},
			{"GET", "h", "/shop/old", nil, 0},
			{"GET", "h", "/shop/broken/x", nil, 0},
			{"GET", "h", "/shop/search?q=shoes&page=2", nil, 0},
			{"GET", "h", "/shop/search?page=2&q=a%20b", nil, 0},
			{"GET", "h", "/shop/search?q=shoes&page=x", nil, 0},
			{"GET", "h", "/shop/search?q=&page=1", nil, 0},
			{"GET", "h", "/shop/search?q=a&q=b", nil, 0},
			{"GET", "h", "/legacy", nil, 0},
			{"GET", "h:8081", "/legacy/a/b?z", nil, 0},
			{"GET", "h", "/shop/partly/a", nil, 0},
			{"GET", "h", "/shop/partly/a", nil, 749_999},
			{"GET", "h", "/shop/partly/a", nil, 750_000},
			{"GET", "h", "/shop/partly", nil, 999_999},
			{"GET", "h", "/shop/other", nil, 0},
			{"GET", "h", "/shop", nil, 0},
			{"GET", "h", "/shop/secure/", nil, 0},
		},
		"upstream-features": {
			{"POST", "h", "/grpc/pkg.Svc/Method", nil, 0},
			{"GET", "h", "/grpc", nil, 0},
			{"GET", "h", "/anything?q", nil, 0},
		},
	}
	for name, reqs := range cases {
		s := loadDir(t, "testdata/in/"+name)
		res, err := Translate(s, testOpts)
		if err != nil {
			t.Fatal(err)
		}
		for _, req := range reqs {
			got := envoyServe(t, res, req)
			want := builtinServe(s, req, testOpts.EscapedSlashes)
			if got != want {
				t.Errorf("%s: %s %s%s: envoy %+v, built-in %+v", name, req.method, req.host, req.path, got, want)
			}
		}
	}
}
