package translate

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flexgw/flexgw/ir"
)

// MetadataNamespace is the filter_metadata namespace carrying flexgw's names
// on every route (read by the access log as %METADATA(ROUTE:flexgw:api)%)
// and the dynamic metadata namespace policies write their outcome to.
const MetadataNamespace = "flexgw"

// routeConfig renders the listener's route configuration: one virtual host
// matching every authority, whose routes are the APIs' routes in listener
// order (longest base path first), each API closed by a 404 for its base
// path so a request never falls through to a shorter base path's API (the
// built-in data plane answers 404 there too). It also returns the listener's
// HTTP filter chain, which depends on the policies its routes enable.
func (t *translator) routeConfig(l *ir.Listener, services map[string]*ir.Service) (*routev3.RouteConfiguration, []*hcmHTTPFilter, error) {
	chain := newFilterChain()
	var routes []*routev3.Route
	for _, a := range l.APIs {
		apiFilters, err := t.policyFilters(chain, a, nil, a.Policies)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range a.Routes {
			ers, err := t.makeRoutes(a, r, services, false)
			if err != nil {
				return nil, nil, fmt.Errorf("api %q route %q (%s): %w", a.Key(), r.Name, r.Source, err)
			}
			own, err := t.policyFilters(chain, a, nil, r.Policies)
			if err != nil {
				return nil, nil, err
			}
			var svcs []enabledFilter
			for _, d := range r.Destinations {
				if d.DirectResponse != nil {
					continue
				}
				more, err := t.serviceFilters(chain, a, services[d.Service])
				if err != nil {
					return nil, nil, err
				}
				svcs = append(svcs, more...)
			}
			var pf map[string]*anypb.Any
			if len(own) == 0 && len(svcs) == 0 {
				// Only the API's filters: the map every such route of the
				// API shares.
				pf, err = t.apiPerFilterConfig(a, apiFilters)
			} else {
				enabled := make([]enabledFilter, 0, len(apiFilters)+len(own)+len(svcs))
				enabled = append(append(append(enabled, apiFilters...), own...), svcs...)
				pf, err = t.perFilterConfig(enabled)
			}
			if err != nil {
				return nil, nil, fmt.Errorf("api %q route %q: %w", a.Key(), r.Name, err)
			}
			for _, er := range ers {
				er.TypedPerFilterConfig = pf
				routes = append(routes, er)
			}
			t.res.RouteStats[t.statPrefix(a, r)] = routeStat(a, r)
		}
		if a.BasePath != "/" && a.BasePath != "" {
			routes = append(routes, t.notFoundRoute(a))
		}
	}
	if len(routes) > 0 {
		routes = append([]*routev3.Route{rejectedPathRoute(t.opts.EscapedSlashes)}, routes...)
	}
	rc := &routev3.RouteConfiguration{
		Name: l.Name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    VirtualHostName,
			Domains: []string{"*"},
			Routes:  routes,
		}},
		// Routes refer to clusters that arrive on the same ADS stream; do not
		// let Envoy reject a route table because a cluster is a beat behind.
		ValidateClusters: wrapperspb.Bool(false),
	}
	router, err := t.routerFilter()
	if err != nil {
		return nil, nil, err
	}
	filters, err := chain.httpFilters(router)
	if err != nil {
		return nil, nil, fmt.Errorf("listener %q: %w", l.Name, err)
	}
	return rc, filters, nil
}

// statPrefix is RouteStatPrefix made unique within the translation: two
// (api, route) pairs can sanitize to the same name ("a_b"+"c", "a"+"b_c").
func (t *translator) statPrefix(a *ir.API, r *ir.Route) string {
	if p, ok := t.routePrefix[r]; ok {
		return p
	}
	key := a.Key() + "\x00" + r.Name
	if p, ok := t.prefixes[key]; ok {
		t.routePrefix[r] = p
		return p
	}
	base := RouteStatPrefix(a, r)
	p := base
	for i := 2; t.prefixTaken[p]; i++ {
		p = fmt.Sprintf("%s_%d", base, i)
	}
	t.prefixes[key] = p
	t.prefixTaken[p] = true
	t.routePrefix[r] = p
	return p
}

func routeStat(a *ir.API, r *ir.Route) RouteStat {
	rs := RouteStat{API: APILabel(a), Route: r.Name}
	if len(r.Destinations) == 1 {
		rs.Service = r.Destinations[0].Service
	}
	return rs
}

// variant is one way a route forwards: its cluster(s), the upstream path
// prefix and, when a route is split per destination, the cumulative share
// of requests it takes.
type variant struct {
	cluster           string
	weighted          *routev3.WeightedCluster
	svcBase, destPath string
	prefix            string
	// cumulative is the share (of 1,000,000) of requests this variant and
	// the ones before it take; 0 for the last (or only) variant.
	cumulative uint32
	suffix     string
	// direct answers the variant's requests itself (a destination with a
	// direct response).
	direct *ir.DirectResponse
}

// makeRoutes renders one ir.Route as Envoy routes: one per rule (rules are
// OR'd, an Envoy route's matchers are AND'd), preceded, for an API with a
// base path, by an exact-match route for the base path itself, whose rule
// path sees "/" (ir.MatchPath) and whose upstream path ir.RewritePath
// computes once here.
//
// Weighted destinations with the same upstream path become
// weighted_clusters. Envoy rewrites the path per route, not per weighted
// cluster, so destinations with different paths (route-weighted with a
// destinationPath each) become one route per destination instead, each
// matching its cumulative share of a runtime_fraction: Envoy draws one
// random value per request and tries routes in order, so shares 70% then
// 100% split 70/30 exactly as weights 70 and 30 do.
//
// grpc drops what proxyless gRPC clients reject or ignore: path rewrites
// and the route timeout; it always uses weighted_clusters.
func (t *translator) makeRoutes(a *ir.API, r *ir.Route, services map[string]*ir.Service, grpc bool) ([]*routev3.Route, error) {
	answers := r.Redirect != nil || r.DirectResponse != nil
	if len(r.Destinations) == 0 && !answers {
		return nil, fmt.Errorf("no destinations")
	}
	var total uint64
	for _, m := range r.Mirrors {
		if services[m.Service] == nil {
			return nil, fmt.Errorf("mirror service %q is not defined", m.Service)
		}
	}
	hasDirect := false
	for _, d := range r.Destinations {
		total += uint64(d.Weight)
		if d.DirectResponse != nil {
			hasDirect = true
			continue
		}
		if services[d.Service] == nil {
			return nil, fmt.Errorf("destination service %q is not defined", d.Service)
		}
	}
	if len(r.Destinations) > 1 && total == 0 {
		return nil, fmt.Errorf("every destination has weight 0")
	}
	variantOf := func(d ir.Destination) variant {
		if d.DirectResponse != nil {
			return variant{direct: d.DirectResponse}
		}
		v := variant{svcBase: services[d.Service].BasePath, destPath: r.DestinationPathFor(d)}
		v.prefix = strings.TrimRight(v.svcBase, "/") + strings.TrimRight(v.destPath, "/")
		return v
	}
	var one variant
	samePaths := true
	if len(r.Destinations) > 0 {
		one = variantOf(r.Destinations[0])
		for _, d := range r.Destinations[1:] {
			samePaths = samePaths && variantOf(d).prefix == one.prefix
		}
		// A share answered directly needs its own route: weighted
		// clusters only name clusters.
		samePaths = samePaths && !hasDirect
	}
	var variants []variant
	switch {
	case answers:
		// The redirect's path is computed as an upstream path would be,
		// with its path where the destination path goes.
		if rd := r.Redirect; rd != nil && rd.RewritePath {
			one.destPath, one.prefix = rd.Path, strings.TrimRight(rd.Path, "/")
		}
		variants = []variant{one}
	case len(r.Destinations) == 1:
		if one.direct == nil {
			one.cluster = ClusterName(r.Destinations[0].Service)
		}
		variants = []variant{one}
	case grpc && hasDirect && total == uint64(directWeight(r)):
		// Proxyless gRPC has only weighted clusters: a route whose
		// destinations all answer directly answers with the first.
		variants = []variant{variantOf(r.Destinations[0])}
	case samePaths || grpc:
		wc := &routev3.WeightedCluster{}
		for _, d := range r.Destinations {
			if d.DirectResponse != nil {
				continue // proxyless gRPC: the share goes to the clusters
			}
			wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{
				Name:   ClusterName(d.Service),
				Weight: wrapperspb.UInt32(d.Weight),
			})
		}
		one.weighted = wc
		variants = []variant{one}
	default:
		var cum uint64
		for k, d := range r.Destinations {
			if d.Weight == 0 {
				continue
			}
			cum += uint64(d.Weight)
			v := variantOf(d)
			if v.direct == nil {
				v.cluster = ClusterName(d.Service)
			}
			v.cumulative = uint32(cum * 1_000_000 / total)
			v.suffix = fmt.Sprintf("/dest%d", k)
			variants = append(variants, v)
		}
		variants[len(variants)-1].cumulative = 0 // the rest, rounding included
	}

	md, err := t.in.routeMetadata(a, r)
	if err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(a.BasePath, "/")
	rules := r.Rules
	if len(rules) == 0 {
		rules = []ir.Rule{{}}
	}
	// What every Envoy route of r has in common is built once: the
	// metadata, stat prefix, timeout, retry policy and cluster; the actions
	// are shared by the routes whose rewrite is shared too.
	statPrefix := t.statPrefix(a, r)
	var timeout *durationpb.Duration
	if !grpc {
		timeout = t.in.duration(r.EffectiveTimeout())
	}
	var idle *durationpb.Duration
	if r.StreamIdleTimeout > 0 {
		idle = t.in.duration(r.StreamIdleTimeout)
	}
	retry := t.in.retry(r.Retry.Attempts, grpc)
	rtTracing, decorator, err := t.routeTracing(r)
	if err != nil {
		return nil, fmt.Errorf("tracing-flex: %w", err)
	}
	var reqAdd, respAdd []*corev3.HeaderValueOption
	var reqRemove, respRemove []string
	if h := r.Headers; h != nil {
		reqAdd, reqRemove = headerMutation(h.Request)
		respAdd, respRemove = headerMutation(h.Response)
	}
	out := make([]*routev3.Route, 0, 2*len(rules)*len(variants))
	// add appends a route; unique says its rewrite is its own (not
	// interned), so its action is too.
	add := func(name string, v variant, m *routev3.RouteMatch, rewrite *matcherv3.RegexMatchAndSubstitute, unique bool) {
		k := actionKey{weighted: v.weighted, timeout: timeout, idle: idle, retry: retry, noWebSocket: !a.WebSocketAllowed(r)}
		if v.weighted == nil && !answers && v.direct == nil {
			k.cluster = t.in.cluster(v.cluster)
		}
		if !grpc {
			k.rewrite = rewrite
		}
		er := &routev3.Route{
			Name:                    name + v.suffix,
			Match:                   m,
			Metadata:                md,
			StatPrefix:              statPrefix,
			Tracing:                 rtTracing,
			Decorator:               decorator,
			RequestHeadersToAdd:     reqAdd,
			RequestHeadersToRemove:  reqRemove,
			ResponseHeadersToAdd:    respAdd,
			ResponseHeadersToRemove: respRemove,
		}
		switch {
		case v.direct != nil:
			er.Action = directResponseAction(v.direct)
		case r.Redirect != nil:
			er.Action = redirectAction(r.Redirect, rewrite)
		case r.DirectResponse != nil:
			er.Action = directResponseAction(r.DirectResponse)
		case r.HostRewrite != "" || len(r.Mirrors) > 0:
			// A host rewrite and mirrors are the route's own: never
			// interned.
			ra := k.build()
			if r.HostRewrite != "" {
				ra.Route.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: r.HostRewrite}
			}
			for _, m := range r.Mirrors {
				if grpc {
					break // proxyless gRPC does not mirror
				}
				mp := &routev3.RouteAction_RequestMirrorPolicy{Cluster: ClusterName(m.Service)}
				if m.PerMillion < ir.MirrorAll {
					mp.RuntimeFraction = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{
						Numerator: m.PerMillion, Denominator: typev3.FractionalPercent_MILLION,
					}}
				}
				ra.Route.RequestMirrorPolicies = append(ra.Route.RequestMirrorPolicies, mp)
			}
			er.Action = ra
		case unique && k.rewrite != nil:
			er.Action = k.build()
		default:
			er.Action = t.in.action(k)
		}
		out = append(out, er)
	}
	namePrefix := a.Key() + "/" + r.Name + "/"
	for i := range rules {
		rule := &rules[i]
		name := namePrefix + strconv.Itoa(i)
		var irRule *ir.Rule
		if len(r.Rules) > 0 {
			irRule = rule
		}
		if base != "" && !grpc && (rule.Path == nil || rule.Path.MatchString("/")) {
			for _, v := range variants {
				m := t.newMatch(rule, v)
				m.PathSpecifier = &routev3.RouteMatch_Path{Path: base}
				up := ir.RewritePath(a.BasePath, irRule, v.destPath, v.svcBase, base)
				var rw *matcherv3.RegexMatchAndSubstitute
				if up != base {
					rw = t.in.rewrite("^.*$", escapeSubstitution(up))
				}
				add(name+"/base", v, m, rw, false)
			}
		}
		// A path whose capture groups capture nothing would be rewritten
		// to "" by Envoy; ir.RewritePath sends "/". Such a path, when it is
		// a single literal ("/flights" for "/flights(/.*)?"), gets an exact
		// route with the upstream path computed here.
		if !grpc {
			if lit, ok := t.emptyGroupsLiteral(rule); ok {
				for _, v := range variants {
					m := t.newMatch(rule, v)
					m.PathSpecifier = &routev3.RouteMatch_Path{Path: base + lit}
					up := ir.RewritePath(a.BasePath, rule, v.destPath, v.svcBase, base+lit)
					add(name+"/exact", v, m, t.in.rewrite("^.*$", escapeSubstitution(up)), false)
				}
			}
		}
		for _, v := range variants {
			m, rewrite, unique, err := t.routeMatch(base, rule, v, grpc)
			if err != nil {
				return nil, fmt.Errorf("rules[%d]: %w", i, err)
			}
			add(name, v, m, rewrite, unique)
		}
	}
	return out, nil
}

// redirectAction renders ir.Redirect: Envoy builds the Location the way
// ir.Redirect.Location does; rewrite is the path rewrite the route would
// make when forwarding, used when the redirect replaces the path.
func redirectAction(rd *ir.Redirect, rewrite *matcherv3.RegexMatchAndSubstitute) *routev3.Route_Redirect {
	ra := &routev3.RedirectAction{
		HostRedirect: rd.Host,
		PortRedirect: uint32(rd.Port),
		ResponseCode: redirectCodes[rd.StatusCode],
	}
	if rd.Scheme != "" {
		ra.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: rd.Scheme}
	}
	if rd.RewritePath && rewrite != nil {
		ra.PathRewriteSpecifier = &routev3.RedirectAction_RegexRewrite{RegexRewrite: rewrite}
	}
	return &routev3.Route_Redirect{Redirect: ra}
}

// redirectCodes maps ir.RedirectStatuses to Envoy's response codes.
var redirectCodes = map[int]routev3.RedirectAction_RedirectResponseCode{
	301: routev3.RedirectAction_MOVED_PERMANENTLY,
	302: routev3.RedirectAction_FOUND,
	303: routev3.RedirectAction_SEE_OTHER,
	307: routev3.RedirectAction_TEMPORARY_REDIRECT,
	308: routev3.RedirectAction_PERMANENT_REDIRECT,
}

// directWeight is the weight of r's destinations that answer directly.
func directWeight(r *ir.Route) uint32 {
	var w uint32
	for _, d := range r.Destinations {
		if d.DirectResponse != nil {
			w += d.Weight
		}
	}
	return w
}

func directResponseAction(d *ir.DirectResponse) *routev3.Route_DirectResponse {
	dr := &routev3.DirectResponseAction{Status: uint32(d.Status)}
	if d.Body != "" {
		dr.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: d.Body}}
	}
	return &routev3.Route_DirectResponse{DirectResponse: dr}
}

// headerMutation renders a route's header changes as Envoy's route-level
// headers_to_add (set overwrites, add appends) and headers_to_remove,
// which Envoy applies removals first, as ir.HeaderMutation.Apply does.
func headerMutation(m *ir.HeaderMutation) ([]*corev3.HeaderValueOption, []string) {
	if m == nil {
		return nil, nil
	}
	var add []*corev3.HeaderValueOption
	for _, v := range m.Set {
		add = append(add, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: v.Name, Value: v.Value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD})
	}
	for _, v := range m.Add {
		add = append(add, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: v.Name, Value: v.Value},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD})
	}
	return add, m.Remove
}

// newMatch is a RouteMatch with the rule's non-path matchers and the
// variant's share of requests; the caller sets the path.
func (t *translator) newMatch(rule *ir.Rule, v variant) *routev3.RouteMatch {
	m := &routev3.RouteMatch{Headers: t.in.ruleHeaders(rule)}
	for _, q := range rule.Query {
		// Envoy matches a parameter's first value, percent-decoded, as
		// ir.Rule.QueryMatches does.
		m.QueryParameters = append(m.QueryParameters, &routev3.QueryParameterMatcher{
			Name: q.Name,
			QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: safeRegex(q.Value.Source)},
			}},
		})
	}
	if v.cumulative > 0 {
		m.RuntimeFraction = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{
			Numerator: v.cumulative, Denominator: typev3.FractionalPercent_MILLION,
		}}
	}
	return m
}

// routeMatch renders a rule for request paths strictly under the base path
// (the base path itself has its own route): the path regex with the base
// path in front, since Envoy matches the whole path; methods on :method,
// host on :authority (any port), and headers. It also returns the rewrite
// that turns the request path into ir.RewritePath's upstream path:
//   - the rule's path has capture groups: prefix + the groups, in order
//     ("/api(/.*)" sends /api/orders upstream as /orders);
//   - otherwise: prefix + the request path without the base path.
//
// A nil rewrite means the path goes upstream unchanged. grpc routes take no
// rewrite, so none is built for them. unique reports a rewrite built for
// this route alone (its pattern is the rule's), not an interned one.
//
// The match of a regex path that takes every request (no runtime fraction)
// is the same for the route's Envoy and gRPC variants and is built once.
func (t *translator) routeMatch(base string, rule *ir.Rule, v variant, grpc bool) (m *routev3.RouteMatch, rewrite *matcherv3.RegexMatchAndSubstitute, unique bool, err error) {
	prefix := v.prefix
	if rule.Path == nil {
		m = t.newMatch(rule, v)
		if base == "" {
			m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
		} else {
			m.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: base}
		}
		if !grpc && (base != "" || prefix != "") {
			rewrite = t.in.strip(base, prefix)
		}
		return m, rewrite, false, nil
	}
	src := rule.Path.Source
	groups, slash, err := t.captureGroups(src)
	if err != nil {
		return nil, nil, false, fmt.Errorf("path %q: %w", src, err)
	}
	if groups > 9 {
		return nil, nil, false, fmt.Errorf("path %q: %d capture groups; Envoy's rewrite supports at most 9", src, groups)
	}
	// Only a match the gRPC pass will ask for again is remembered.
	share := v.cumulative == 0 && t.in.grpc
	k := matchKey{base: base, rule: rule}
	if share {
		m = t.in.matches[k]
	}
	if m == nil {
		m = t.newMatch(rule, v)
		m.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: safeRegex(regexp.QuoteMeta(base) + "(?:" + src + ")")}
		if share {
			t.in.matches[k] = m
		}
	}
	if grpc {
		return m, nil, false, nil
	}
	switch {
	case groups > 0:
		var sub strings.Builder
		sub.WriteString(escapeSubstitution(prefix))
		if !slash {
			// ir.RewritePath puts a '/' before a captured path that has none.
			sub.WriteByte('/')
		}
		for g := 1; g <= groups; g++ {
			sub.WriteByte('\\')
			sub.WriteByte(byte('0' + g))
		}
		full := m.GetSafeRegex().GetRegex()
		return m, &matcherv3.RegexMatchAndSubstitute{Pattern: safeRegex("^" + full + "$"), Substitution: sub.String()}, true, nil
	case base != "" || prefix != "":
		rewrite = t.in.strip(base, prefix)
	}
	return m, rewrite, false, nil
}

func escapeSubstitution(s string) string { return strings.ReplaceAll(s, `\`, `\\`) }

// captureGroups counts the capturing groups of a user's expression and
// reports whether what the first group captures always starts with '/'
// (so the rewrite must not add one). Anything it cannot prove counts as
// starting with '/', the common "(/.*)" shape.
func (t *translator) captureGroups(src string) (int, bool, error) {
	key := regexKey{kind: 'c', src: src}
	if r, ok := t.regexCache[key]; ok {
		return r.groups, r.slash, r.err
	}
	g, slash, err := captureGroups(src)
	t.regexCache[key] = regexInfo{groups: g, slash: slash, err: err}
	return g, slash, err
}

// regexKey is one analysis (capture groups 'c', empty-groups literal 'l')
// of one expression.
type regexKey struct {
	kind byte
	src  string
}

// regexInfo caches the analysis of one rule regex: APIs repeat the same
// expressions, and parsing them is most of a large translation's cost.
type regexInfo struct {
	lit    string
	ok     bool
	groups int
	slash  bool
	err    error
}

func captureGroups(src string) (int, bool, error) {
	re, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return 0, false, err
	}
	n := re.MaxCap()
	if n == 0 {
		return 0, true, nil
	}
	return n, startsWithSlash(firstCap(re)), nil
}

// emptyGroupsLiteral returns the one path a rule's regex matches when
// every capture group captures nothing, if that path is a literal and the
// regex really matches it.
func (t *translator) emptyGroupsLiteral(rule *ir.Rule) (string, bool) {
	if rule.Path == nil || rule.Path.Re().NumSubexp() == 0 {
		return "", false
	}
	key := regexKey{kind: 'l', src: rule.Path.Source}
	if r, ok := t.regexCache[key]; ok {
		return r.lit, r.ok
	}
	lit, ok := emptyGroupsLiteral(rule)
	t.regexCache[key] = regexInfo{lit: lit, ok: ok}
	return lit, ok
}

func emptyGroupsLiteral(rule *ir.Rule) (string, bool) {
	re, err := syntax.Parse(rule.Path.Source, syntax.Perl)
	if err != nil {
		return "", false
	}
	re = emptyCaptures(re).Simplify()
	prog, err := syntax.Compile(re)
	if err != nil {
		return "", false
	}
	lit, complete := prog.Prefix()
	if !complete || !rule.Path.MatchString(ir.MatchPath(lit)) || lit == "" || lit[0] != '/' {
		return "", false
	}
	m := rule.Path.Re().FindStringSubmatch(lit)
	for _, g := range m[1:] {
		if g != "" {
			return "", false
		}
	}
	return lit, true
}

func emptyCaptures(re *syntax.Regexp) *syntax.Regexp {
	if re.Op == syntax.OpCapture {
		return &syntax.Regexp{Op: syntax.OpEmptyMatch}
	}
	out := *re
	out.Sub = make([]*syntax.Regexp, len(re.Sub))
	for i, s := range re.Sub {
		out.Sub[i] = emptyCaptures(s)
	}
	return &out
}

func firstCap(re *syntax.Regexp) *syntax.Regexp {
	if re.Op == syntax.OpCapture && re.Cap == 1 {
		return re
	}
	for _, s := range re.Sub {
		if c := firstCap(s); c != nil {
			return c
		}
	}
	return nil
}

func startsWithSlash(re *syntax.Regexp) bool {
	for re != nil {
		switch re.Op {
		case syntax.OpCapture:
			re = re.Sub[0]
		case syntax.OpConcat:
			if len(re.Sub) == 0 {
				return true
			}
			re = re.Sub[0]
		case syntax.OpLiteral:
			return len(re.Rune) > 0 && re.Rune[0] == '/'
		case syntax.OpCharClass:
			for i := 0; i+1 < len(re.Rune); i += 2 {
				if re.Rune[i] <= '/' && '/' <= re.Rune[i+1] {
					return true
				}
			}
			return false
		case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
			return false
		case syntax.OpPlus:
			re = re.Sub[0]
		case syntax.OpRepeat:
			if re.Min < 1 {
				return true
			}
			re = re.Sub[0]
		default:
			return true
		}
	}
	return true
}

func safeRegex(re string) *matcherv3.RegexMatcher {
	return &matcherv3.RegexMatcher{Regex: re}
}

func regexHeader(name, re string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{
		Name: name,
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: safeRegex(re)},
		}},
	}
}

// notFoundRoute answers 404 for any path under an API's base path that none
// of its routes matched.
func (t *translator) notFoundRoute(a *ir.API) *routev3.Route {
	md, _ := t.in.routeMetadata(a, nil)
	return &routev3.Route{
		Name:     a.Key() + "/not-found",
		Match:    &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: strings.TrimSuffix(a.BasePath, "/")}},
		Action:   &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 404}},
		Metadata: md,
	}
}

// rejectedPathRoute answers 400 for the paths Envoy's normalisation lets
// through and the built-in data plane rejects after the same
// normalisation (ir.RejectedPathRegex): escaped dots with parameters
// ("%2e%2e;"), malformed escapes, and escapes a correct normalisation
// never leaves ("%2%65" becomes "%2e").
func rejectedPathRoute(es ir.EscapedSlashes) *routev3.Route {
	return &routev3.Route{
		Name:   "flexgw/rejected-path",
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: safeRegex(ir.RejectedPathRegex(es))}},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 400}},
	}
}
