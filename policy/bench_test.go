package policy_test

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
	"github.com/flexgw/flexgw/sharedstore/redistest"
)

// BenchmarkPolicyOverhead is the cost one policy adds to one request on the
// built-in data plane: the middleware around a handler that does nothing.
func BenchmarkPolicyOverhead(b *testing.B) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	secret := []byte("0123456789abcdef0123456789abcdef")
	tb := &testing.T{}
	rsTok := signJWT(tb, "RS256", "", goodClaims(), k)
	hsTok := signJWT(tb, "HS256", "", goodClaims(), secret)
	cases := []struct {
		name string
		p    *ir.Policy
		hdr  []string
	}{
		{"none", nil, nil},
		{"rate-limiting-flex/local", policytest.Policy("rate-limiting-flex", rlConfig(1<<40, 60000, map[string]any{"clusterizable": false})), nil},
		{"spike-control-flex", policytest.Policy("spike-control-flex", map[string]any{"maximumRequests": 1 << 40, "timePeriodInMilliseconds": 60000}), nil},
		{"http-basic-authentication-flex", policytest.Policy("http-basic-authentication-flex", map[string]any{"username": "u", "password": "p"}), basic("u", "p")},
		{"jwt-validation-flex/RS256", policytest.Policy("jwt-validation-flex", map[string]any{"textKey": pubPEM(tb, &k.PublicKey)}), bearer(rsTok)},
		{"jwt-validation-flex/HS256", policytest.Policy("jwt-validation-flex", map[string]any{"signingMethod": "hmac", "textKey": string(secret)}), bearer(hsTok)},
		{"client-id-enforcement", policytest.Policy("client-id-enforcement", map[string]any{"credentials": []map[string]string{{"clientId": "u", "clientSecret": "p"}}}), basic("u", "p")},
		{"ip-allowlist-flex", policytest.Policy("ip-allowlist-flex", map[string]any{"ips": []string{"10.0.0.0/8", "192.168.0.0/16", "127.0.0.1"}}), nil},
		{"ip-blocklist-flex", policytest.Policy("ip-blocklist-flex", map[string]any{"ips": []string{"10.0.0.0/8"}}), nil},
		{"cors-flex", policytest.Policy("cors-flex", map[string]any{}), []string{"Origin", "https://app.example"}},
		{"header-injection-flex", policytest.Policy("header-injection-flex", map[string]any{"inboundHeaders": []map[string]string{{"key": "x-a", "value": "#[attributes.requestPath]"}}}), nil},
		{"header-removal-flex", policytest.Policy("header-removal-flex", map[string]any{"inboundHeaders": []string{"x-secret"}}), nil},
		{"message-logging-flex/condition-false", policytest.Policy("message-logging-flex", map[string]any{"loggingConfiguration": []map[string]any{
			{"itemName": "i", "itemData": map[string]any{"message": "m", "level": "INFO", "conditional": "#[attributes.method == 'POST']"}}}}), nil},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var h http.Handler = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
			if c.p != nil {
				d, _ := policy.Lookup(c.p.Name)
				mw, err := d.Build(policy.Env{API: policytest.API()}, c.p)
				if err != nil {
					b.Fatal(err)
				}
				h = mw(h)
			}
			req := httptest.NewRequest(http.MethodGet, "http://gw/orders/1", nil)
			req.RemoteAddr = "127.0.0.1:40000"
			for i := 0; i+1 < len(c.hdr); i += 2 {
				req.Header.Set(c.hdr[i], c.hdr[i+1])
			}
			req = req.WithContext(policy.WithRecorder(req.Context(), policytest.NopRecorder{}))
			w := policytest.NewDiscardWriter()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r := req.Clone(req.Context())
				w.Reset()
				h.ServeHTTP(w, r)
			}
		})
	}
}

// BenchmarkRateLimitRedisIncr is one shared-window increment against a
// real redis-server (the Redis share of a clusterizable rate limit).
func BenchmarkRateLimitRedis(b *testing.B) {
	srv := redistest.Start(b)
	store := newRedisStoreB(b, srv.Addr)
	p := policytest.Policy("rate-limiting-flex", rlConfig(1<<40, 60000, nil))
	d, _ := policy.Lookup(p.Name)
	mw, err := d.Build(policy.Env{API: policytest.API(), Shared: store}, p)
	if err != nil {
		b.Fatal(err)
	}
	h := mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, "http://gw/", nil)
		w := policytest.NewDiscardWriter()
		for pb.Next() {
			h.ServeHTTP(w, req)
		}
	})
}
