package dataplane

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/flexgw/flexgw/dataplane/internal/h1"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

// table is the routing table compiled from one snapshot. It is immutable
// and swapped atomically on Apply; a request uses the table it started
// with from start to end.
type table struct {
	version   uint64
	listeners map[string]*lnRoutes // by listen address
}

// lnRoutes holds the APIs of one listener, longest base path first.
type lnRoutes struct {
	name string
	apis []*apiRoutes
}

type apiRoutes struct {
	key string
	// base is the API base path without trailing slash ("" for "/").
	base   string
	routes []*route
}

// route is one compiled ir.Route.
type route struct {
	api     *apiRoutes
	name    string
	rules   []ir.Rule
	dests   []*service
	prefix  []string // per destination: service base path + destinationPath
	dpath   []string // per destination: its destinationPath
	cum     []uint32 // cumulative weights
	timeout time.Duration
	// streamIdle ends a response body on which no byte arrived for this
	// long (Configuration spec.timeouts.streamIdleSeconds, Envoy's HCM
	// stream_idle_timeout).
	streamIdle time.Duration
	retries    int
	// noWS refuses WebSocket upgrades (403; the websocket extension).
	noWS bool
	// chain runs the policies and ends in the proxy; nil when the route
	// has no policies, so such requests skip the context plumbing.
	chain http.Handler
	// headers are the route's own header changes (routeheaders.go).
	headers *ir.HeaderFilters
	// hostRewrite, when set, is the Host header the upstream receives.
	hostRewrite string
	// preserveHost sends the client's Host header upstream.
	preserveHost bool
	// redirect and direct make the route answer by itself
	// (routeactions.go); it has no destinations then.
	redirect *ir.Redirect
	direct   *ir.DirectResponse
	// mirrors get a copy of the requests forwarded (mirror.go).
	mirrors []mirrorTo
	// destDirect answers, per destination, the requests it takes
	// instead of a service (whose dests entry is nil).
	destDirect []*ir.DirectResponse
}

// requestPath is the path routing matches and the upstream receives: the
// request's escaped path after ir.NormalizePath (normalizeRequest stores
// it in URL.RawPath, for every request that reaches routing). The
// normalised path holds no byte a request line cannot carry.
func requestPath(r *http.Request) string {
	if p := r.URL.RawPath; p != "" {
		return p
	}
	return r.URL.EscapedPath()
}

// normalizeRequest replaces r's path with its ir.NormalizePath form, so
// routing, policy rules, policies reading r.URL, rewrites and the upstream
// all see one path. It reports false when it answered the request itself
// (400 for a path the normalisation rejects, 307 to the normalised path
// when escaped slashes redirect).
func (h *lnHandler) normalizeRequest(st *reqState, w http.ResponseWriter, r *http.Request) bool {
	if r.ProtoMajor != 1 && (!h1.ValidFieldName(r.Method) || !h1.ValidHost(r.Host)) {
		// The h1 server checks its request line and Host; a request from
		// another front end (HTTP/2's :method, :authority) is held to the
		// same: both are written into the upstream's HTTP/1.1 head, where
		// a CR, LF or space would inject headers or a second request.
		st.writeError(w, http.StatusBadRequest, "", "invalid method or authority")
		return false
	}
	u := r.URL
	src := u.RawPath
	if src == "" {
		src = u.EscapedPath()
	}
	if src == "*" && r.Method == http.MethodOptions {
		return true
	}
	if u.Fragment != "" || strings.IndexByte(u.RawQuery, '#') >= 0 {
		// A fragment in the query (the path check is NormalizePath's):
		// query matches would see "debug=1#x" while an upstream that
		// splits the target as a URL reads debug=1. Envoy refuses a
		// fragment anywhere in :path.
		st.writeError(w, http.StatusBadRequest, "", "invalid request target: fragment")
		return false
	}
	np, v := ir.NormalizePath(src, h.dp.opts.EscapedSlashes)
	switch v {
	case ir.PathReject:
		st.writeError(w, http.StatusBadRequest, "", "invalid request path")
		return false
	case ir.PathRedirect:
		loc := np
		if u.RawQuery != "" {
			loc += "?" + u.RawQuery
		}
		w.Header()["Location"] = []string{loc}
		st.writeError(w, http.StatusTemporaryRedirect, "", "path normalised: "+np)
		return false
	}
	u.RawPath = np
	if np == src {
		return true
	}
	if strings.IndexByte(np, '%') < 0 {
		u.Path = np
	} else if p, err := url.PathUnescape(np); err == nil {
		u.Path = p
	}
	if u.RawQuery != "" || u.ForceQuery {
		r.RequestURI = np + "?" + u.RawQuery
	} else {
		r.RequestURI = np
	}
	return true
}

// requestQuery is the raw query, with bytes a request line cannot carry
// (controls, space, DEL) percent-encoded.
func requestQuery(r *http.Request) string {
	q := r.URL.RawQuery
	for i := 0; i < len(q); i++ {
		if q[i] <= ' ' || q[i] == 0x7f {
			var b strings.Builder
			for j := 0; j < len(q); j++ {
				if c := q[j]; c <= ' ' || c == 0x7f {
					b.WriteByte('%')
					b.WriteByte("0123456789ABCDEF"[c>>4])
					b.WriteByte("0123456789ABCDEF"[c&0xf])
				} else {
					b.WriteByte(c)
				}
			}
			return b.String()
		}
	}
	return q
}

// match finds the route for r. APIs are tried longest base path first; an
// API whose routes all miss lets a shorter base path try (the behaviour of
// one flattened Envoy route table). rest is the path relative to the API
// base path ("" for the base path itself), as ir.StripBasePath defines it.
func (l *lnRoutes) match(r *http.Request) (rt *route, rule *ir.Rule, rest string) {
	path := requestPath(r)
	for _, a := range l.apis {
		rest, ok := ir.StripBasePath(a.base, path)
		if !ok {
			continue
		}
		mp := ir.MatchPath(rest)
		for _, rt := range a.routes {
			if len(rt.rules) == 0 {
				return rt, nil, rest
			}
			for i := range rt.rules {
				if rt.rules[i].Matches(r.Method, r.Host, mp, r.Header) && rt.rules[i].QueryMatches(r.URL.RawQuery) {
					return rt, &rt.rules[i], rest
				}
			}
		}
	}
	return nil, nil, ""
}

// hasCaptures reports whether the matched rule rewrites the path.
func hasCaptures(rule *ir.Rule) bool {
	return rule != nil && rule.Path != nil && rule.Path.Re().NumSubexp() > 0
}

// joinPrefix is what ir.RewritePath prepends to the relative path: the
// service base path, then the destination path, both without trailing
// slash. Precomputed per destination so the common case of no capture
// groups writes the upstream path without building a string.
func joinPrefix(svcBase, dest string) string {
	return strings.TrimRight(svcBase, "/") + strings.TrimRight(dest, "/")
}

// writeUpstreamPath writes the upstream path (without query) exactly as
// ir.RewritePath computes it.
func writeUpstreamPath(w interface{ WriteString(string) (int, error) }, st *reqState, prefix string, r *http.Request) {
	if st.upPath != "" {
		w.WriteString(st.upPath)
		return
	}
	rest := st.rest
	w.WriteString(prefix)
	if rest != "" && rest[0] != '/' {
		w.WriteString("/")
	}
	w.WriteString(rest)
	if prefix == "" && rest == "" {
		w.WriteString("/")
	}
}

// rewrite computes the upstream path of a rule with capture groups into
// st.upPath. It reports false when the rewritten path has a dot segment:
// the request path is normalised, so only the captures can have put it
// there ("/api(.*)" on "/api.."), and an upstream that resolves it would
// serve a path outside the destination path.
func (st *reqState) rewrite(r *http.Request) bool {
	if !hasCaptures(st.rule) {
		return true
	}
	st.upPath = ir.RewritePath(st.route.api.base, st.rule, st.destPath, st.svc.cfg.BasePath, requestPath(r))
	return ir.DotSegmentFree(st.upPath)
}

// buildTable compiles s against the live services. It fails when a
// policy cannot be built; nothing is swapped then.
func (dp *DataPlane) buildTable(s *ir.Snapshot, svcs map[string]*service) (*table, error) {
	t := &table{version: s.Version, listeners: make(map[string]*lnRoutes, len(s.Listeners))}
	for _, l := range s.Listeners {
		lr := &lnRoutes{name: l.Name}
		for _, a := range l.APIs {
			ar := &apiRoutes{key: a.Key(), base: a.BasePath}
			for _, r := range a.Routes {
				rt, err := dp.buildRoute(s, a, ar, r, svcs)
				if err != nil {
					return nil, fmt.Errorf("api %s (%s) route %s: %w", a.Key(), a.Source, r.Name, err)
				}
				rt.streamIdle = l.EffectiveStreamIdle()
				if r.StreamIdleTimeout > 0 { // stream-idle-timeout-flex
					rt.streamIdle = r.StreamIdleTimeout
				}
				ar.routes = append(ar.routes, rt)
			}
			lr.apis = append(lr.apis, ar)
		}
		// Longest base path first, whatever order the snapshot used.
		slices.SortStableFunc(lr.apis, func(x, y *apiRoutes) int {
			return cmp.Compare(len(strings.TrimRight(y.base, "/")), len(strings.TrimRight(x.base, "/")))
		})
		t.listeners[l.Address()] = lr
	}
	return t, nil
}

func (dp *DataPlane) buildRoute(s *ir.Snapshot, a *ir.API, ar *apiRoutes, r *ir.Route, svcs map[string]*service) (*route, error) {
	rt := &route{
		api:     ar,
		name:    r.Name,
		rules:   r.Rules,
		timeout: r.EffectiveTimeout(),
		retries: r.Retry.Attempts,
		noWS:    !a.WebSocketAllowed(r),
		headers: r.Headers,
		// The redirect's Location and the direct response's body are
		// built per request from these.
		hostRewrite:  r.HostRewrite,
		preserveHost: r.PreserveHost,
		redirect:     r.Redirect,
		direct:       r.DirectResponse,
	}
	var total uint32
	var svcPolicies []*ir.Policy
	owner := map[*ir.Policy]*ir.Service{}
	for i, d := range r.Destinations {
		if d.DirectResponse != nil {
			// This share of the requests is answered, not forwarded.
			total += d.Weight
			rt.dests = append(rt.dests, nil)
			rt.cum = append(rt.cum, total)
			rt.dpath = append(rt.dpath, "")
			rt.prefix = append(rt.prefix, "")
			rt.destDirect = append(rt.destDirect, d.DirectResponse)
			continue
		}
		rt.destDirect = append(rt.destDirect, nil)
		svc := svcs[d.Service]
		if svc == nil {
			return nil, fmt.Errorf("destinations[%d]: service %q not in snapshot", i, d.Service)
		}
		total += d.Weight
		rt.dests = append(rt.dests, svc)
		rt.cum = append(rt.cum, total)
		dpath := r.DestinationPathFor(d)
		rt.dpath = append(rt.dpath, dpath)
		rt.prefix = append(rt.prefix, joinPrefix(svc.cfg.BasePath, dpath))
		// Policies and their Env come from this snapshot's service; the
		// live service may be an older, equivalent one.
		cur := s.Service(d.Service)
		if cur == nil {
			cur = svc.cfg
		}
		svcPolicies = append(svcPolicies, cur.Policies...)
		for _, p := range cur.Policies {
			owner[p] = cur
		}
	}
	for i, m := range r.Mirrors {
		svc := svcs[m.Service]
		if svc == nil {
			return nil, fmt.Errorf("mirrors[%d]: service %q not in snapshot", i, m.Service)
		}
		rt.mirrors = append(rt.mirrors, mirrorTo{svc, m.PerMillion})
	}
	if len(rt.dests) == 0 && rt.redirect == nil && rt.direct == nil {
		return nil, fmt.Errorf("no destinations")
	}
	// Chain order: API policies, then the route's (the compiler already
	// folds the services' policies in), then any service policy not
	// listed there; each group by ascending Order (stable). The first
	// runs outermost.
	groups := [][]*ir.Policy{sortedPolicies(a.Policies), sortedPolicies(r.Policies), sortedPolicies(svcPolicies)}
	seen := map[*ir.Policy]bool{}
	var mws []policy.Middleware
	for _, g := range groups {
		for _, p := range g {
			if seen[p] {
				continue
			}
			seen[p] = true
			def, ok := policy.Lookup(p.Name)
			if !ok {
				return nil, fmt.Errorf("policy %s (%s): %q is not a known policy", p.Binding, p.Source, p.Name)
			}
			env := policy.Env{Snapshot: s, API: a, Route: r, Logger: dp.log.With("policy", p.Name, "binding", p.Binding), Shared: dp.opts.Shared}
			env.Service = owner[p]
			mw, err := def.Build(env, p)
			if err != nil {
				return nil, fmt.Errorf("policy %s (%s): %w", p.Binding, p.Source, err)
			}
			if len(p.Rules) > 0 {
				mw = withRules(mw, p.Rules, ar.base)
			}
			mws = append(mws, mw)
		}
	}
	if len(mws) > 0 {
		var h http.Handler = http.HandlerFunc(dp.proxyFromChain)
		for i := len(mws) - 1; i >= 0; i-- {
			h = mws[i](h)
		}
		rt.chain = h
	}
	return rt, nil
}

func sortedPolicies(ps []*ir.Policy) []*ir.Policy {
	out := slices.Clone(ps)
	slices.SortStableFunc(out, func(x, y *ir.Policy) int { return cmp.Compare(x.Order, y.Order) })
	return out
}

// withRules runs mw only for requests matching one of rules; others go
// straight to next.
func withRules(mw policy.Middleware, rules []ir.Rule, base string) policy.Middleware {
	return func(next http.Handler) http.Handler {
		inner := mw(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rest, ok := ir.StripBasePath(base, requestPath(r))
			if ok {
				mp := ir.MatchPath(rest)
				for i := range rules {
					if rules[i].Matches(r.Method, r.Host, mp, r.Header) {
						inner.ServeHTTP(w, r)
						return
					}
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}
