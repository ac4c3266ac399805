package policy_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/policy"
)

// BenchmarkRateLimitLocalHeaders is rate-limiting-flex's per-request work
// with a keySelector and exposeHeaders, counted in the in-process store:
// the key and header strings a request builds.
func BenchmarkRateLimitLocalHeaders(b *testing.B) {
	p := policytest.Policy("rate-limiting-flex", map[string]any{
		"rateLimits":    []map[string]any{{"maximumRequests": 1 << 40, "timePeriodInMilliseconds": 3600000}},
		"keySelector":   "#[attributes.headers['x-client']]",
		"exposeHeaders": true,
		"clusterizable": false,
	})
	d, _ := policy.Lookup(p.Name)
	mw, err := d.Build(policy.Env{API: policytest.API()}, p)
	if err != nil {
		b.Fatal(err)
	}
	h := mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	req := httptest.NewRequest(http.MethodGet, "http://gw/", nil)
	req.Header.Set("X-Client", "client-a")
	w := policytest.NewDiscardWriter()
	b.ReportAllocs()
	for b.Loop() {
		w.Reset()
		h.ServeHTTP(w, req)
	}
}
