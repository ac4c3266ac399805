package native_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/internal/policytest"
)

// BenchmarkServicePolicies is the per-request cost, on the built-in data
// plane, of native-ext-authz-flex (real gRPC and HTTP authorization
// services) and native-ext-proc-flex (a real gRPC processor), round trips
// over loopback included.
func BenchmarkServicePolicies(b *testing.B) {
	as := newAuthzServer(b)
	ps := newProcServer(b)
	authzHTTP := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	b.Cleanup(authzHTTP.Close)
	body1K := strings.Repeat("0123456789abcdef", 64)
	policytest.Bench(b, []policytest.BenchCase{
		{Name: "native-ext-authz-flex/grpc", Policy: "native-ext-authz-flex", Config: map[string]any{"uri": "h2://" + as.addr}, Header: []string{"access-token", "good"}},
		{Name: "native-ext-authz-flex/http", Policy: "native-ext-authz-flex", Config: map[string]any{"uri": authzHTTP.URL, "serverType": "http"}},
		{Name: "native-ext-proc-flex/headers", Policy: "native-ext-proc-flex", Config: map[string]any{"uri": "h2://" + ps.addr}},
		{Name: "native-ext-proc-flex/buffered-1KiB", Policy: "native-ext-proc-flex", Config: map[string]any{"uri": "h2://" + ps.addr, "requestBodyMode": "buffered", "responseBodyMode": "buffered"}, Body: body1K},
	})
}
