package e2e

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/flexgw/flexgw/sharedstore/redistest"
)

// Two gateway replicas sharing one Redis admit exactly the configured quota
// per window, whichever replica a request reaches.
func TestReplicasShareRateLimitThroughRedis(t *testing.T) {
	redis := redistest.Start(t)
	up := startUpstream(t, "a", nil)
	const limit = 7
	config := func(port int) string {
		return fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: limited
spec:
  address: http://127.0.0.1:%d
  services:
    backend:
      address: %s
  policies:
    - policyRef:
        name: rate-limiting-flex
      config:
        rateLimits:
          - maximumRequests: %d
            timePeriodInMilliseconds: 600000
        exposeHeaders: true
        clusterizable: true
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: Configuration
metadata:
  name: shared
spec:
  sharedStorage:
    redis:
      address: %s
`, port, up.URL, limit, redis.Addr)
	}
	p1, p2 := freePort(t), freePort(t)
	startGateway(t, writeConfig(t, map[string]string{"api.yaml": config(p1)}))
	startGateway(t, writeConfig(t, map[string]string{"api.yaml": config(p2)}))

	admitted, limited := 0, 0
	for i := 0; i < 3*limit; i++ {
		port := p1
		if i%2 == 1 {
			port = p2
		}
		code, body, hdr := get(t, fmt.Sprintf("http://127.0.0.1:%d/x", port))
		switch code {
		case http.StatusOK:
			admitted++
		case http.StatusTooManyRequests:
			limited++
			if hdr.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After: %v", hdr)
			}
		default:
			t.Fatalf("request %d: status %d %s", i, code, body)
		}
	}
	if admitted != limit || limited != 2*limit {
		t.Errorf("admitted %d and limited %d of %d requests across two replicas; want exactly %d admitted", admitted, limited, 3*limit, limit)
	}
}
