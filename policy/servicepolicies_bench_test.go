package policy_test

import (
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/internal/slapdtest"
)

// BenchmarkServicePolicies is the per-request cost, on the built-in data
// plane, of the policies that ask another server: LDAP (a real slapd) and
// OpenID Connect (the stand-in provider); policy/native has the same for
// external authorization and processing. Each case includes its round
// trips over loopback, so it measures the policy and its peer together;
// "cached" cases do none.
func BenchmarkServicePolicies(b *testing.B) {
	dir := slapdtest.Start(b, directoryLDIF)
	op := newOIDCProvider(b, true)
	op.issue("bench-token", map[string]any{"active": true, "scope": "read", "client_id": "c", "exp": time.Now().Add(time.Hour).Unix()})
	ldapCfg := map[string]any{"ldapServerURL": dir.URL, "ldapServerUserDn": "cn=search," + slapdtest.Suffix,
		"ldapServerUserPassword": "search-secret", "ldapSearchBase": "ou=people," + slapdtest.Suffix}
	oidcCfg := func(cache int) map[string]any {
		return map[string]any{"issuer": op.URL, "clientId": "gateway", "clientSecret": "gw-secret", "scopes": "read", "maxCacheSize": cache}
	}
	policytest.Bench(b, []policytest.BenchCase{
		{Name: "ldap-authentication-flex", Policy: "ldap-authentication-flex", Config: ldapCfg, Header: basic("jane", "jane-secret")},
		{Name: "openidconnect-access-token-enforcement-flex/cached", Policy: "openidconnect-access-token-enforcement-flex", Config: oidcCfg(1000), Header: bearer("bench-token")},
		{Name: "openidconnect-access-token-enforcement-flex/introspected", Policy: "openidconnect-access-token-enforcement-flex", Config: oidcCfg(0), Header: bearer("bench-token")},
	})
}
