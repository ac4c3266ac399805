package policyfilter

import (
	"strings"

	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

// The static credential-injection policies render to Envoy's
// header_mutation filter (the OAuth2 one fetches tokens: extauthz.go).
func init() {
	registerAll(credentialInjection, "credential-injection-basic-auth-flex", "credential-injection-api-key-flex")
}

func credentialInjection(_ Env, p *ir.Policy) ([]Filter, error) {
	cs, err := policy.CredentialInjectionsOf(p)
	if err != nil {
		return nil, err
	}
	m := &headermutationv3.Mutations{}
	for _, c := range cs {
		m.RequestMutations = append(m.RequestMutations, injectMutation(c.Header, c.Value, c.Overwrite))
	}
	return []Filter{{Name: FilterName(p), Config: &headermutationv3.HeaderMutation{Mutations: m}}}, nil
}

// injectMutation sets name to value on the upstream request; with
// overwrite false a value the client sent is kept (Flex).
func injectMutation(name, value string, overwrite bool) *mutationv3.HeaderMutation {
	action := corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	if !overwrite {
		action = corev3.HeaderValueOption_ADD_IF_ABSENT
	}
	return &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Append{Append: &corev3.HeaderValueOption{
		Header: &corev3.HeaderValue{Key: strings.ToLower(name), Value: value}, AppendAction: action,
	}}}
}
