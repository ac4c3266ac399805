package policy_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/policy"
)

// TestBearerPoliciesShareTheScopeRule: oauth2-token-introspection-flex and
// openidconnect-access-token-enforcement-flex, each asking its own
// introspection endpoint about the same tokens, let through and refuse
// (403) exactly the same requests for every scopes/criteria pair.
func TestBearerPoliciesShareTheScopeRule(t *testing.T) {
	exp := time.Now().Add(time.Hour).Unix()
	tokenScopes := map[string]string{"none": "", "read": "read", "write": "write", "both": "read write", "extra": "read write admin"}
	flat := map[string]map[string]any{}
	op := newOIDCProvider(t, true)
	for tok, sc := range tokenScopes {
		info := map[string]any{"active": true, "scope": sc, "client_id": "app", "exp": exp}
		flat[tok] = info
		op.issue(tok, info)
	}
	as, _ := introspectionServer(t, "Basic Z3c6cw==", flat)
	up := policytest.NewUpstream(t)

	cases := []struct {
		scopes, criteria string
		allowed          map[string]bool // tokens let through; the rest get 403
	}{
		{"", "AND", map[string]bool{"none": true, "read": true, "write": true, "both": true, "extra": true}},
		{"", "OR", map[string]bool{"none": true, "read": true, "write": true, "both": true, "extra": true}},
		{"read", "AND", map[string]bool{"read": true, "both": true, "extra": true}},
		{"read write", "AND", map[string]bool{"both": true, "extra": true}},
		{"read write", "OR", map[string]bool{"read": true, "write": true, "both": true, "extra": true}},
		{"admin", "OR", map[string]bool{"extra": true}},
		{"read admin", "and", map[string]bool{"extra": true}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%q %s", c.scopes, c.criteria), func(t *testing.T) {
			introspection := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("oauth2-token-introspection-flex", map[string]any{
				"introspectionURL": as.URL, "authorizationValue": "Basic Z3c6cw==", "scopes": c.scopes, "scopeValidationCriteria": c.criteria}))
			oidc := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("openidconnect-access-token-enforcement-flex", map[string]any{
				"issuer": op.URL, "clientId": "gateway", "clientSecret": "gw-secret", "scopes": c.scopes, "scopeValidationCriteria": c.criteria}))
			for tok := range tokenScopes {
				want := 403
				if c.allowed[tok] {
					want = 200
				}
				for name, g := range map[string]*policytest.Gateway{"introspection": introspection, "oidc": oidc} {
					if r := g.Get(t, "/x", bearer(tok)...); r.Status != want {
						t.Errorf("%s, token scopes %q: status %d, want %d", name, tokenScopes[tok], r.Status, want)
					}
				}
			}
		})
	}
}
