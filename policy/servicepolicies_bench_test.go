package policy_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/slapdtest"
	"github.com/flexgw/flexgw/policy"
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
	cases := []struct {
		name, policy string
		cfg          any
		hdr          []string
		body         string
	}{
		{"ldap-authentication-flex", "ldap-authentication-flex", ldapCfg, basic("jane", "jane-secret"), ""},
		{"openidconnect-access-token-enforcement-flex/cached", "openidconnect-access-token-enforcement-flex", oidcCfg(1000), bearer("bench-token"), ""},
		{"openidconnect-access-token-enforcement-flex/introspected", "openidconnect-access-token-enforcement-flex", oidcCfg(0), bearer("bench-token"), ""},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			h := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				_, _ = io.WriteString(w, "upstream")
			}))
			p := mkPolicy(c.policy, c.cfg)
			d, _ := policy.Lookup(p.Name)
			mw, err := d.Build(policy.Env{API: testAPI()}, p)
			if err != nil {
				b.Fatal(err)
			}
			h = mw(h)
			body := []byte(c.body)
			req := httptest.NewRequest(http.MethodPost, "http://gw/orders", nil)
			req.RemoteAddr = "127.0.0.1:40000"
			for i := 0; i+1 < len(c.hdr); i += 2 {
				req.Header.Set(c.hdr[i], c.hdr[i+1])
			}
			req = req.WithContext(policy.WithRecorder(req.Context(), nopRecorder{}))
			w := &discardWriter{h: http.Header{}}
			run := func(w http.ResponseWriter) {
				r := req.Clone(req.Context())
				r.Body = io.NopCloser(bytes.NewReader(body))
				r.ContentLength = int64(len(body))
				h.ServeHTTP(w, r)
			}
			rec := httptest.NewRecorder()
			if run(rec); rec.Code != http.StatusOK { // warms caches and connections
				b.Fatalf("%s: status %d, want 200: %s", c.name, rec.Code, rec.Body)
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				clear(w.h)
				run(w)
			}
		})
	}
}
