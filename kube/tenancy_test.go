package kube_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/kube/kubetest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestNamespacesAreTenants attacks the cross-namespace rule: team-b writes
// a PolicyBinding that routes team-a's API (which adds team-a's Secret as
// a credential to what it sends upstream) to team-b's own Service, one that
// sends team-b's requests to team-a's Service (and the client certificate
// its tls-outbound holds), and a Selector that would put a policy on every
// namespace's APIs. Without a ReferenceGrant in team-a the first two are
// refused with RefNotPermitted and team-a keeps serving as before; the
// Selector only reaches team-b's own API. A grant team-b writes in its own
// namespace changes nothing; one team-a writes lets exactly that binding in.
func TestNamespacesAreTenants(t *testing.T) {
	t.Parallel() // own API server, gateway and ports: independent of the others
	cl := kubetest.Start(t)
	c := kubetest.NewClient(t, cl.Kubeconfig)
	c.InstallCRDs(t, crdDir())
	installGatewayAPI(t, c) // ReferenceGrant
	upA, loot := upstream(t, "a"), upstream(t, "loot")
	portA, portB := kubetest.FreePort(t), kubetest.FreePort(t)

	c.MustApply(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: team-b}\n")
	c.MustApply(t, fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata: {name: shop, namespace: team-a}
spec: {address: "http://127.0.0.1:%d"}
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: Service
metadata: {name: a-svc, namespace: team-a}
spec: {address: "%s"}
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: PolicyBinding
metadata: {name: shop-route, namespace: team-a}
spec:
  targetRef: {name: shop}
  policyRef: {name: route}
  rules: [{path: "/public(?:/.*)?"}]
  config: {destinationRef: {name: a-svc}}
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata: {name: own, namespace: team-b}
spec:
  address: "http://127.0.0.1:%d"
  services: {loot: {address: "%s"}}
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: Service
metadata: {name: loot, namespace: team-b}
spec: {address: "%s"}
`, portA, upA, portB, loot, loot))
	shop := fmt.Sprintf("http://127.0.0.1:%d", portA)
	startGateway(t, cl.Kubeconfig)
	waitServed(t, shop+"/public/x", "200 a /public/x")

	hijack := `apiVersion: gateway.mulesoft.com/v1alpha1
kind: PolicyBinding
metadata: {name: hijack, namespace: team-b}
spec:
  targetRef: {name: shop, namespace: team-a}
  policyRef: {name: route}
  rules: [{path: "/admin(?:/.*)?"}]
  config: {destinationRef: {name: loot}}
`
	borrow := `apiVersion: gateway.mulesoft.com/v1alpha1
kind: PolicyBinding
metadata: {name: borrow, namespace: team-b}
spec:
  targetRef: {name: own}
  policyRef: {name: route}
  rules: [{path: "/borrowed(?:/.*)?"}]
  config: {destinationRef: {name: a-svc, namespace: team-a}}
`
	everyone := `apiVersion: gateway.mulesoft.com/v1alpha1
kind: PolicyBinding
metadata: {name: everyone, namespace: team-b}
spec:
  targetRef: {kind: Selector, selector: {kind: ApiInstance}}
  policyRef: {name: rate-limiting-flex}
  config: {rateLimits: [{maximumRequests: 1, timePeriodInMilliseconds: 600000}]}
`
	selfGrant := `apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: self, namespace: team-b}
spec:
  from: [{group: gateway.mulesoft.com, kind: PolicyBinding, namespace: team-b}]
  to: [{group: gateway.mulesoft.com, kind: ApiInstance}, {group: gateway.mulesoft.com, kind: Service}]
`
	c.MustApply(t, selfGrant+"---\n"+hijack+"---\n"+borrow+"---\n"+everyone)
	reason, msg := waitCondition(t, c, hijack, "Accepted", "False")
	if reason != "RefNotPermitted" || !strings.Contains(msg, "ApiInstance or Service team-a/shop is in another namespace") {
		t.Fatalf("hijack: Accepted=False %s %q", reason, msg)
	}
	reason, msg = waitCondition(t, c, borrow, "Accepted", "False")
	if reason != "RefNotPermitted" || !strings.Contains(msg, "spec.config.destinationRef: Service team-a/a-svc") {
		t.Fatalf("borrow: Accepted=False %s %q", reason, msg)
	}
	waitCondition(t, c, everyone, "Programmed", "True")
	// The Selector applies in team-b: its API's second request is limited.
	own := fmt.Sprintf("http://127.0.0.1:%d/x", portB)
	kubetest.Eventually(t, time.Minute, "team-b's Selector on team-b's API", func() (bool, string) {
		got := get(own)
		return strings.HasPrefix(got, "429"), got
	})
	// ...and nowhere else: team-a serves as before, never routes /admin to
	// team-b, never rate-limited; team-b cannot reach team-a's Service.
	for i := 0; i < 3; i++ {
		if got := get(shop + "/public/y"); got != "200 a /public/y" {
			t.Fatalf("team-a's API after team-b's bindings: %s", got)
		}
		if got := get(shop + "/admin/z"); !strings.HasPrefix(got, "404") {
			t.Fatalf("team-b's binding routed team-a's /admin: %s", got)
		}
	}

	// team-a grants PolicyBindings of team-b its ApiInstance shop (only):
	// the hijack binding is accepted — the rule is the grant, nothing else.
	grant := `apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: team-b-may-route-shop, namespace: team-a}
spec:
  from: [{group: gateway.mulesoft.com, kind: PolicyBinding, namespace: team-b}]
  to: [{group: gateway.mulesoft.com, kind: ApiInstance, name: shop}]
`
	c.MustApply(t, grant)
	waitServed(t, shop+"/admin/z", "200 loot /admin/z")
	waitCondition(t, c, hijack, "Accepted", "True")
	if s, r, m, _ := condition(t, c, borrow, "Accepted"); s != "False" || r != "RefNotPermitted" {
		t.Fatalf("a grant for ApiInstance shop let borrow reach Service a-svc: %s %s %q", s, r, m)
	}
	// Withdrawn: refused again, team-a's /admin is its own again.
	if err := c.Resource(t, kubetest.Decode(t, grant)[0]).Delete(context.Background(), "team-b-may-route-shop", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, c, hijack, "Accepted", "False")
	kubetest.Eventually(t, time.Minute, "hijack gone with the grant", func() (bool, string) {
		got := get(shop + "/admin/z")
		return strings.HasPrefix(got, "404"), got
	})
}
