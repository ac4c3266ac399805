package policyfilter

import (
	"net/http"
	"strings"

	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

func init() {
	Register("header-injection-flex", headerInjection)
	Register("header-removal-flex", headerRemoval)
}

// headerInjection renders header-injection-flex: literal headers render to
// Envoy's header_mutation filter; headers computed by expressions are
// computed by the agent: ext_authz adds them to the request, and when an
// outbound header is one, ext_proc runs the whole binding across the
// request and the response (the expression may read either).
func headerInjection(env Env, p *ir.Policy) ([]Filter, error) {
	in, out, err := policy.HeaderInjectionSpecOf(p)
	if err != nil {
		return nil, err
	}
	literal := func(hs []policy.InjectedHeaderSpec) bool {
		for _, h := range hs {
			if !h.Literal {
				return false
			}
		}
		return true
	}
	if !literal(out) {
		return AgentExtProc(env, p, false)
	}
	if !literal(in) {
		return ExtAuthz(env, p)
	}
	m := &headermutationv3.Mutations{}
	seen := map[string]bool{}
	for _, h := range in {
		// As the built-in middleware: the first entry for a key replaces
		// the client's values, later ones add to it.
		k := http.CanonicalHeaderKey(h.Name)
		if !seen[k] {
			seen[k] = true
			m.RequestMutations = append(m.RequestMutations, overwriteHeader(h.Name, h.Value))
			continue
		}
		m.RequestMutations = append(m.RequestMutations, appendHeader(h.Name, h.Value))
	}
	for _, h := range out {
		m.ResponseMutations = append(m.ResponseMutations, appendHeader(h.Name, h.Value))
	}
	return []Filter{{Name: FilterName(p), Config: &headermutationv3.HeaderMutation{Mutations: m}}}, nil
}

// headerRemoval renders header-removal-flex with Envoy's header_mutation filter.
func headerRemoval(_ Env, p *ir.Policy) ([]Filter, error) {
	in, out, err := policy.HeaderRemovalSpecOf(p)
	if err != nil {
		return nil, err
	}
	return []Filter{{Name: FilterName(p), Config: &headermutationv3.HeaderMutation{Mutations: &headermutationv3.Mutations{
		RequestMutations:  removeMutations(in),
		ResponseMutations: removeMutations(out),
	}}}}, nil
}

func overwriteHeader(k, v string) *mutationv3.HeaderMutation {
	return &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Append{Append: &corev3.HeaderValueOption{
		Header: &corev3.HeaderValue{Key: strings.ToLower(k), Value: v}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}}}
}

func appendHeader(k, v string) *mutationv3.HeaderMutation {
	action := corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
	if policy.SingleValued(k) {
		action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	}
	return &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Append{Append: &corev3.HeaderValueOption{
		Header: &corev3.HeaderValue{Key: strings.ToLower(k), Value: v}, AppendAction: action,
	}}}
}

func removeMutations(ps []policy.HeaderPatternSpec) []*mutationv3.HeaderMutation {
	var out []*mutationv3.HeaderMutation
	for _, p := range ps {
		if p.Name == "" {
			// The same anchored expression; RE2 on both data planes.
			out = append(out, &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_RemoveOnMatch_{RemoveOnMatch: &mutationv3.HeaderMutation_RemoveOnMatch{
				KeyMatcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "(?i)^(?:" + p.Regexp + ")$"}}},
			}}})
			continue
		}
		out = append(out, &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Remove{Remove: p.Name}})
	}
	return out
}
