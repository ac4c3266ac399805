package kube_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/kube/kubetest"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// routeCond returns "Status Reason" of one condition of an HTTPRoute's
// status for the parentRef with sectionName section ("" if none).
func routeCond(t *testing.T, c *kubetest.Client, ns, name, section, typ string) string {
	t.Helper()
	o, err := c.Get(t, kubetest.Decode(t, fmt.Sprintf("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: %s, namespace: %s}\n", name, ns))[0])
	if err != nil {
		return err.Error()
	}
	ps, _, _ := unstructured.NestedSlice(o.Object, "status", "parents")
	for _, p := range ps {
		pm := p.(map[string]any)
		ref, _ := pm["parentRef"].(map[string]any)
		if sn, _ := ref["sectionName"].(string); sn != section {
			continue
		}
		conds, _ := pm["conditions"].([]any)
		for _, cd := range conds {
			m := cd.(map[string]any)
			if m["type"] == typ {
				return fmt.Sprintf("%s %s", m["status"], m["reason"])
			}
		}
	}
	return fmt.Sprintf("no %s condition for section %q in %v", typ, section, ps)
}

func waitRouteCond(t *testing.T, c *kubetest.Client, ns, name, section, typ, want string) {
	t.Helper()
	kubetest.Eventually(t, time.Minute, fmt.Sprintf("HTTPRoute %s/%s %s %s", ns, name, section, typ), func() (bool, string) {
		got := routeCond(t, c, ns, name, section, typ)
		return got == want, "got " + got + ", want " + want
	})
}

// gatewayYAML is the GatewayClass flexgw and the Gateway default/gw with
// the listeners given (a YAML list), ending with a document separator.
func gatewayYAML(listeners string) string {
	return `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: flexgw}
spec: {controllerName: flexgw.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: flexgw
  listeners:` + listeners + "\n---\n"
}

// TestHTTPRouteAttachment checks, against a real API server and through
// real requests, which routes a listener accepts (allowedRoutes Same, All
// and Selector; listener and route hostname intersection, wildcards
// covering several labels), the hostname-first precedence, cross-namespace
// backends with and without a ReferenceGrant, and the Accepted and
// ResolvedRefs reasons the spec names for each refusal.
func TestHTTPRouteAttachment(t *testing.T) {
	t.Parallel() // own API server, gateway and ports: independent of the others
	cl, c := gatewayAPICluster(t)
	c.MustApply(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: blue, labels: {team: blue}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: red}\n")
	c.MustApply(t, backendService(t, "default", "web"))
	c.MustApply(t, backendService(t, "default", "api"))
	c.MustApply(t, backendService(t, "blue", "blueweb"))
	c.MustApply(t, backendService(t, "red", "redweb"))
	pSame, pAll, pSel := kubetest.FreePort(t), kubetest.FreePort(t), kubetest.FreePort(t)
	c.MustApply(t, gatewayYAML(fmt.Sprintf(`
  - {name: same, port: %d, protocol: HTTP, hostname: "*.example.com"}
  - {name: all, port: %d, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
  - {name: sel, port: %d, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: blue}}}}}`, pSame, pAll, pSel))+`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wild, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: same}]
  hostnames: [a.b.example.com, other.org]
  rules:
  - matches: [{path: {type: PathPrefix, value: /p}}]
    backendRefs: [{name: web, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: nohost, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: same}]
  hostnames: [nomatch.org]
  rules:
  - backendRefs: [{name: web, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: red, namespace: red}
spec:
  parentRefs: [{name: gw, namespace: default, sectionName: same}, {name: gw, namespace: default, sectionName: all}, {name: gw, namespace: default, sectionName: sel}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /red}}]
    backendRefs: [{name: redweb, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: blue, namespace: blue}
spec:
  parentRefs: [{name: gw, namespace: default, sectionName: sel}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /blue}}]
    backendRefs: [{name: blueweb, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: longpath, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: all}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /a/long/path}}]
    backendRefs: [{name: api, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: byhost, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: all}]
  hostnames: [h.example]
  rules:
  - backendRefs: [{name: web, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: cross, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: all}]
  rules:
  - matches: [{path: {type: Exact, value: /cross}}]
    backendRefs: [{name: blueweb, namespace: blue, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: badkind, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: all}]
  rules:
  - matches: [{path: {type: Exact, value: /badkind}}]
    backendRefs: [{group: example.com, kind: Bucket, name: web, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: missing, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: all}]
  rules:
  - matches: [{path: {type: Exact, value: /missing}}]
    backendRefs: [{name: nosuch, port: 80}]
`)

	startGateway(t, cl.Kubeconfig)
	at := func(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }

	// The listener's *.example.com covers a.b.example.com (several labels);
	// the route's other.org is not the listener's.
	kubetest.Eventually(t, time.Minute, "wildcard listener", func() (bool, string) {
		got := getHost(at(pSame)+"/p/x", "a.b.example.com")
		return got == "200 web /p/x", got
	})
	if got := getHost(at(pSame)+"/p/x", "other.org"); strings.HasPrefix(got, "200") {
		t.Fatalf("a route hostname outside the listener's was served: %s", got)
	}
	waitRouteCond(t, c, "default", "wild", "same", "Accepted", "True Accepted")
	waitRouteCond(t, c, "default", "nohost", "same", "Accepted", "False NoMatchingListenerHostname")

	// allowedRoutes: Same refuses red, All takes it, Selector takes blue only.
	waitServed(t, at(pAll)+"/red/1", "200 redweb /red/1")
	waitServed(t, at(pSel)+"/blue/1", "200 blueweb /blue/1")
	if got := get(at(pSel) + "/red/1"); strings.HasPrefix(got, "200") {
		t.Fatalf("a Selector listener took a route of an unselected namespace: %s", got)
	}
	if got := getHost(at(pSame)+"/red/1", "x.example.com"); strings.HasPrefix(got, "200") {
		t.Fatalf("a Same listener took a route of another namespace: %s", got)
	}
	waitRouteCond(t, c, "red", "red", "same", "Accepted", "False NotAllowedByListeners")
	waitRouteCond(t, c, "red", "red", "all", "Accepted", "True Accepted")
	waitRouteCond(t, c, "red", "red", "sel", "Accepted", "False NotAllowedByListeners")
	waitRouteCond(t, c, "blue", "blue", "sel", "Accepted", "True Accepted")

	// The hostname is chosen before the path: h.example's catch-all beats a
	// longer path of a route without hostnames.
	kubetest.Eventually(t, time.Minute, "hostname precedence", func() (bool, string) {
		got := getHost(at(pAll)+"/a/long/path", "h.example")
		return got == "200 web /a/long/path", got
	})
	if got := getHost(at(pAll)+"/a/long/path", "else.example"); got != "200 api /a/long/path" {
		t.Fatalf("route without hostnames: %s", got)
	}

	// Backend references.
	waitRouteCond(t, c, "default", "cross", "all", "ResolvedRefs", "False RefNotPermitted")
	waitRouteCond(t, c, "default", "badkind", "all", "ResolvedRefs", "False InvalidKind")
	waitRouteCond(t, c, "default", "missing", "all", "ResolvedRefs", "False BackendNotFound")
	waitRouteCond(t, c, "default", "missing", "all", "Accepted", "True Accepted")
	if got := get(at(pAll) + "/cross"); strings.HasPrefix(got, "200") {
		t.Fatalf("a cross-namespace backend without a ReferenceGrant was served: %s", got)
	}
	c.MustApply(t, `apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: from-default, namespace: blue}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: "", kind: Service}]
`)
	waitServed(t, at(pAll)+"/cross", "200 blueweb /cross")
	waitRouteCond(t, c, "default", "cross", "all", "ResolvedRefs", "True ResolvedRefs")

	// Labelling red into the selector admits its route there.
	c.MustApply(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: red, labels: {team: blue}}\n")
	waitServed(t, at(pSel)+"/red/2", "200 redweb /red/2")
	waitRouteCond(t, c, "red", "red", "sel", "Accepted", "True Accepted")
}
