package kube_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/kube/kubetest"
	"github.com/flexgw/flexgw/sharedstore/redistest"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestReplicasShareRedisLimits runs two gateway replicas against one API
// server and one real redis-server: both serve the same Ingress (each on its
// own --ingress-address, as two pods would on their own IPs), a rate limit
// bound to the Ingress admits exactly its quota across both, and exactly
// one replica holds the status Lease.
func TestReplicasShareRedisLimits(t *testing.T) {
	t.Parallel() // own API server, gateway and ports: independent of the others
	cl := kubetest.Start(t)
	c := kubetest.NewClient(t, cl.Kubeconfig)
	c.InstallCRDs(t, crdDir())
	redis := redistest.Start(t)
	const limit = 5
	c.MustApply(t, backendService(t, "default", "web"))
	c.MustApply(t, fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: flexgw}
spec: {controller: flexgw.io/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: default}
spec:
  ingressClassName: flexgw
  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: gateway.mulesoft.com/v1beta1
kind: Configuration
metadata: {name: shared, namespace: default}
spec:
  sharedStorage:
    redis: {address: %s}
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: PolicyBinding
metadata: {name: shop-limit, namespace: default}
spec:
  targetRef: {kind: Ingress, name: shop}
  policyRef: {name: rate-limiting-flex}
  config:
    rateLimits: [{maximumRequests: %d, timePeriodInMilliseconds: 600000}]
    clusterizable: true
`, redis.Addr, limit))

	var urls []string
	for _, id := range []string{"replica-a", "replica-b"} {
		port := kubetest.FreePort(t)
		startGateway(t, cl.Kubeconfig, "--gateway-id", id, "--ingress-address", fmt.Sprintf("http://127.0.0.1:%d", port))
		urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d/x", port))
	}
	// Both serve (and the limit is in force) before counting: the first
	// request of each reaches the upstream or is limited, never a 404.
	for _, u := range urls {
		kubetest.Eventually(t, time.Minute, "replica serving "+u, func() (bool, string) {
			got := get(u)
			return got == "200 web /x", got
		})
	}
	admitted, limited := 2, 0
	for i := 0; i < 3*limit; i++ {
		got := get(urls[i%2])
		switch {
		case got == "200 web /x":
			admitted++
		case strings.HasPrefix(got, "429"):
			limited++
		default:
			t.Fatalf("request %d to %s: %s", i, urls[i%2], got)
		}
	}
	if admitted != limit || limited != 3*limit+2-limit {
		t.Fatalf("admitted %d, limited %d across two replicas; want exactly %d admitted", admitted, limited, limit)
	}

	holder := leaseHolder(t, c)
	if holder != "replica-a" && holder != "replica-b" {
		t.Fatalf("status Lease held by %q", holder)
	}
}

// leaseHolder returns who holds the status Lease.
func leaseHolder(t *testing.T, c *kubetest.Client) string {
	t.Helper()
	var holder string
	kubetest.Eventually(t, time.Minute, "status Lease held", func() (bool, string) {
		o, err := c.Get(t, kubetest.Decode(t, "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: flexgw-status, namespace: default}\n")[0])
		if err != nil {
			return false, err.Error()
		}
		holder, _, _ = unstructured.NestedString(o.Object, "spec", "holderIdentity")
		return holder != "", "no holder"
	})
	return holder
}
