package translate

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flexgw/flexgw/ir"
)

// interned holds the sub-messages many resources of one translation have in
// common, built once and referenced from every resource that needs them:
// a route's metadata (its Envoy routes and its proxyless gRPC route), the
// `:method` matcher thousands of routes repeat, one timeout, one retry
// policy, one ADS config source.
//
// A large config's translation is mostly such repeats, and the agent holds
// two translations across a reload; sharing them is what keeps its memory
// within budget (1,000 APIs / 5,000 routes: a Result keeps 21 MiB instead
// of 41, one translation allocates 29 MB instead of 53). Sharing is safe because nothing mutates a message after
// Translate returns it (the ADS cache only marshals, concurrently, which
// protobuf allows), and it changes nothing Envoy receives: the wire and JSON
// encodings of a shared message are those of a copy.
//
// Rule: a message that is interned is never modified after it is built.
// Code that must set a field on a message (a RouteMatch getting its path)
// builds its own and interns only the parts it leaves alone.
type interned struct {
	// grpc: the proxyless gRPC pass follows and asks again for what the
	// Envoy pass built (metadata, matches); without it those are not kept.
	grpc      bool
	ads       *corev3.ConfigSource
	durations map[time.Duration]*durationpb.Duration
	retries   map[retryKey]*routev3.RetryPolicy
	headers   map[headerKey]*routev3.HeaderMatcher
	ruleHdrs  map[*ir.Rule][]*routev3.HeaderMatcher
	regexes   map[string]*matcherv3.RegexMatcher
	rewrites  map[rewriteKey]*matcherv3.RegexMatchAndSubstitute
	strips    map[stripKey]*matcherv3.RegexMatchAndSubstitute
	clusters  map[string]*routev3.RouteAction_Cluster
	actions   map[actionKey]*routev3.Route_Route
	metadata  map[metadataKey]*corev3.Metadata
	values    map[string]*structpb.Value
	matches   map[matchKey]*routev3.RouteMatch
}

type retryKey struct {
	attempts int
	grpc     bool
}

type headerKey struct{ name, regex string }

type rewriteKey struct{ pattern, substitution string }

type stripKey struct{ base, prefix string }

// actionKey identifies a RouteAction by its parts, themselves interned (or
// unique to one ir route, like a WeightedCluster), so pointer equality is
// content equality.
type actionKey struct {
	cluster  *routev3.RouteAction_Cluster
	weighted *routev3.WeightedCluster
	timeout  *durationpb.Duration
	idle     *durationpb.Duration // stream idle timeout (stream-idle-timeout-flex)
	retry    *routev3.RetryPolicy
	rewrite  *matcherv3.RegexMatchAndSubstitute
	// noWebSocket refuses WebSocket upgrades on the route (403).
	noWebSocket bool
}

// metadataKey is an ir route (its metadata names the API and the route) or,
// with route nil, an API's not-found route.
type metadataKey struct {
	api   *ir.API
	route *ir.Route
}

// matchKey is the RouteMatch of a rule's regex route below a base path.
type matchKey struct {
	base string
	rule *ir.Rule
}

func newInterned(grpc bool) *interned {
	return &interned{
		grpc:      grpc,
		ads:       adsSource(),
		durations: map[time.Duration]*durationpb.Duration{},
		retries:   map[retryKey]*routev3.RetryPolicy{},
		headers:   map[headerKey]*routev3.HeaderMatcher{},
		ruleHdrs:  map[*ir.Rule][]*routev3.HeaderMatcher{},
		regexes:   map[string]*matcherv3.RegexMatcher{},
		rewrites:  map[rewriteKey]*matcherv3.RegexMatchAndSubstitute{},
		strips:    map[stripKey]*matcherv3.RegexMatchAndSubstitute{},
		clusters:  map[string]*routev3.RouteAction_Cluster{},
		actions:   map[actionKey]*routev3.Route_Route{},
		metadata:  map[metadataKey]*corev3.Metadata{},
		values:    map[string]*structpb.Value{},
		matches:   map[matchKey]*routev3.RouteMatch{},
	}
}

func (in *interned) duration(d time.Duration) *durationpb.Duration {
	p, ok := in.durations[d]
	if !ok {
		p = durationpb.New(d)
		in.durations[d] = p
	}
	return p
}

// retry is the retry policy of a route with attempts retries; nil for none.
func (in *interned) retry(attempts int, grpc bool) *routev3.RetryPolicy {
	if attempts <= 0 {
		return nil
	}
	k := retryKey{attempts, grpc}
	p, ok := in.retries[k]
	if !ok {
		p = &routev3.RetryPolicy{
			// Retry only when the request never reached an upstream,
			// which is safe whatever the method.
			RetryOn:    "connect-failure,reset-before-request",
			NumRetries: wrapperspb.UInt32(uint32(attempts)),
		}
		if grpc {
			p.RetryOn = "unavailable"
		}
		in.retries[k] = p
	}
	return p
}

// regex is a RegexMatcher for re.
func (in *interned) regex(re string) *matcherv3.RegexMatcher {
	p, ok := in.regexes[re]
	if !ok {
		p = safeRegex(re)
		in.regexes[re] = p
	}
	return p
}

// rewrite is a regex_rewrite whose pattern is shared by many routes (the
// whole path, a base path): per-route patterns are built by the caller.
func (in *interned) rewrite(pattern, substitution string) *matcherv3.RegexMatchAndSubstitute {
	k := rewriteKey{pattern, substitution}
	p, ok := in.rewrites[k]
	if !ok {
		p = &matcherv3.RegexMatchAndSubstitute{Pattern: in.regex(pattern), Substitution: substitution}
		in.rewrites[k] = p
	}
	return p
}

// strip is the rewrite that replaces the base path with prefix, keeping
// the rest of the request path.
func (in *interned) strip(base, prefix string) *matcherv3.RegexMatchAndSubstitute {
	k := stripKey{base, prefix}
	p, ok := in.strips[k]
	if !ok {
		p = in.rewrite("^"+regexp.QuoteMeta(base)+"(/.*)$", escapeSubstitution(prefix)+`\1`)
		in.strips[k] = p
	}
	return p
}

func (in *interned) header(name, re string) *routev3.HeaderMatcher {
	k := headerKey{name, re}
	p, ok := in.headers[k]
	if !ok {
		p = regexHeader(name, re)
		in.headers[k] = p
	}
	return p
}

// ruleHeaders is a rule's non-path matchers (methods, host, headers), the
// same slice for every route of the rule: callers never append to it.
func (in *interned) ruleHeaders(rule *ir.Rule) []*routev3.HeaderMatcher {
	if rule.Methods == nil && rule.Host == nil && len(rule.Headers) == 0 {
		return nil
	}
	if hs, ok := in.ruleHdrs[rule]; ok {
		return hs
	}
	hs := make([]*routev3.HeaderMatcher, 0, 2+len(rule.Headers))
	if rule.Methods != nil {
		hs = append(hs, in.header(":method", rule.Methods.Source))
	}
	if rule.Host != nil {
		hs = append(hs, in.header(":authority", ir.HostPattern(rule.Host)))
	}
	for _, h := range rule.Headers {
		hs = append(hs, in.header(strings.ToLower(h.Name), h.Value.Source))
	}
	hs = hs[:len(hs):len(hs)] // an append elsewhere copies
	in.ruleHdrs[rule] = hs
	return hs
}

// action is the Route_Route of a route with these (interned) parts.
func (in *interned) action(k actionKey) *routev3.Route_Route {
	p, ok := in.actions[k]
	if !ok {
		p = k.build()
		in.actions[k] = p
	}
	return p
}

// build makes the action k stands for.
func (k actionKey) build() *routev3.Route_Route {
	act := &routev3.RouteAction{Timeout: k.timeout, IdleTimeout: k.idle, RetryPolicy: k.retry, RegexRewrite: k.rewrite}
	if k.noWebSocket {
		act.UpgradeConfigs = noWebSocket
	}
	if k.weighted != nil {
		act.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: k.weighted}
	} else {
		act.ClusterSpecifier = k.cluster
	}
	return &routev3.Route_Route{Route: act}
}

// noWebSocket overrides the listener's websocket upgrade_config on a
// route that refuses upgrades (the websocket extension).
var noWebSocket = []*routev3.RouteAction_UpgradeConfig{{UpgradeType: "websocket", Enabled: wrapperspb.Bool(false)}}

func (in *interned) cluster(name string) *routev3.RouteAction_Cluster {
	p, ok := in.clusters[name]
	if !ok {
		p = &routev3.RouteAction_Cluster{Cluster: name}
		in.clusters[name] = p
	}
	return p
}

// routeMetadata is the filter metadata naming a route's API and route (r
// nil: the API only, for its not-found route).
func (in *interned) routeMetadata(a *ir.API, r *ir.Route) (*corev3.Metadata, error) {
	k := metadataKey{a, r}
	if md, ok := in.metadata[k]; ok {
		return md, nil
	}
	fields := make(map[string]*structpb.Value, 2)
	v, err := in.stringValue(APILabel(a))
	if err != nil {
		return nil, err
	}
	fields["api"] = v
	if r != nil && r.Name != "" {
		if fields["route"], err = in.stringValue(r.Name); err != nil {
			return nil, err
		}
	}
	md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{MetadataNamespace: {Fields: fields}}}
	if in.grpc && r != nil {
		in.metadata[k] = md // the route's gRPC variant shares it
	}
	return md, nil
}

// stringValue is a Struct string value; like structpb.NewValue it refuses
// invalid UTF-8, which protobuf cannot encode.
func (in *interned) stringValue(s string) (*structpb.Value, error) {
	if v, ok := in.values[s]; ok {
		return v, nil
	}
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("invalid UTF-8 in string: %q", s)
	}
	v := structpb.NewStringValue(s)
	in.values[s] = v
	return v, nil
}
