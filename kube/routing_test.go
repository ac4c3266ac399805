package kube_test

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/kube/kubetest"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// gatewayAPIVersion is the Gateway API release whose standard CRDs the
// tests install (from the Go module, which ships them).
const gatewayAPIVersion = "v1.6.3"

// gatewayAPICluster starts an API server with flexgw's CRDs and the
// Gateway API's standard CRDs installed, and a client for it.
func gatewayAPICluster(t *testing.T) (*kubetest.Cluster, *kubetest.Client) {
	t.Helper()
	cl := kubetest.Start(t)
	c := kubetest.NewClient(t, cl.Kubeconfig)
	c.InstallCRDs(t, crdDir())
	installGatewayAPI(t, c)
	return cl, c
}

func installGatewayAPI(t *testing.T, c *kubetest.Client) {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", "sigs.k8s.io/gateway-api@"+gatewayAPIVersion).Output()
	if err != nil {
		t.Fatalf("go mod download sigs.k8s.io/gateway-api: %v", err)
	}
	var dir string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, `"Dir": "`) {
			dir = strings.TrimSuffix(strings.TrimPrefix(l, `"Dir": "`), `",`)
		}
	}
	std := filepath.Join(dir, "config", "crd", "standard")
	tmp := t.TempDir()
	for _, k := range []string{"gatewayclasses", "gateways", "httproutes", "referencegrants"} {
		b, err := exec.Command("cp", filepath.Join(std, "gateway.networking.k8s.io_"+k+".yaml"), tmp).CombinedOutput()
		if err != nil {
			t.Fatalf("copy Gateway API CRD %s: %v %s", k, err, b)
		}
	}
	c.InstallCRDs(t, tmp)
}

func getHost(url, host string) string {
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = host
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

// TestIngressAndGatewayAPI serves an Ingress and an HTTPRoute whose
// backend is a Service with a hand-written EndpointSlice pointing at a
// loopback upstream (no kubelet runs pods here), checks their status, and
// binds a policy to the HTTPRoute.
func TestIngressAndGatewayAPI(t *testing.T) {
	t.Parallel() // own API server, gateway and ports: independent of the others
	cl, c := gatewayAPICluster(t)

	ingPort, gwPort := kubetest.FreePort(t), kubetest.FreePort(t)
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
  - host: shop.example
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: flexgw}
spec: {controllerName: flexgw.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: flexgw
  listeners: [{name: http, port: %d, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1}}]
    backendRefs: [{name: web, port: 80}]
`, gwPort))

	startGateway(t, cl.Kubeconfig, "--ingress-address", fmt.Sprintf("http://127.0.0.1:%d", ingPort), "--publish-address", "127.0.0.1")

	ing := fmt.Sprintf("http://127.0.0.1:%d", ingPort)
	kubetest.Eventually(t, time.Minute, "Ingress served", func() (bool, string) {
		got := getHost(ing+"/api/x", "shop.example")
		return got == "200 web /api/x", got
	})
	if got := getHost(ing+"/api/x", "other.example"); strings.HasPrefix(got, "200") {
		t.Fatalf("a host the Ingress does not name was routed: %s", got)
	}
	if got := getHost(ing+"/apix", "shop.example"); strings.HasPrefix(got, "200") {
		t.Fatalf("Prefix /api matched /apix: %s", got)
	}
	waitServed(t, fmt.Sprintf("http://127.0.0.1:%d/v1/a", gwPort), "200 web /v1/a")

	// Status written back.
	kubetest.Eventually(t, time.Minute, "Ingress status", func() (bool, string) {
		o, err := c.Get(t, kubetest.Decode(t, "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: shop, namespace: default}\n")[0])
		if err != nil {
			return false, err.Error()
		}
		lb, _, _ := unstructured.NestedSlice(o.Object, "status", "loadBalancer", "ingress")
		return len(lb) == 1 && lb[0].(map[string]any)["ip"] == "127.0.0.1", fmt.Sprint(lb)
	})
	route := "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: default}\n"
	kubetest.Eventually(t, time.Minute, "HTTPRoute status", func() (bool, string) {
		o, err := c.Get(t, kubetest.Decode(t, route)[0])
		if err != nil {
			return false, err.Error()
		}
		ps, _, _ := unstructured.NestedSlice(o.Object, "status", "parents")
		if len(ps) != 1 {
			return false, fmt.Sprint(ps)
		}
		p := ps[0].(map[string]any)
		conds, _ := p["conditions"].([]any)
		ok := p["controllerName"] == "flexgw.io/gateway-controller"
		for _, cd := range conds {
			m := cd.(map[string]any)
			ok = ok && m["status"] == "True"
		}
		return ok && len(conds) == 2, fmt.Sprint(p)
	})
	gw := "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\n"
	kubetest.Eventually(t, time.Minute, "Gateway Programmed", func() (bool, string) {
		o, err := c.Get(t, kubetest.Decode(t, gw)[0])
		if err != nil {
			return false, err.Error()
		}
		conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
		ls, _, _ := unstructured.NestedSlice(o.Object, "status", "listeners")
		prog := false
		for _, cd := range conds {
			m := cd.(map[string]any)
			prog = prog || (m["type"] == "Programmed" && m["status"] == "True")
		}
		attached := len(ls) == 1 && ls[0].(map[string]any)["attachedRoutes"] == int64(1)
		return prog && attached, fmt.Sprint(conds, ls)
	})

	// A policy bound to the HTTPRoute applies to its requests only.
	c.MustApply(t, `apiVersion: gateway.mulesoft.com/v1alpha1
kind: PolicyBinding
metadata: {name: limit-r, namespace: default}
spec:
  targetRef: {kind: HTTPRoute, name: r}
  policyRef: {name: rate-limiting-flex}
  config:
    rateLimits: [{maximumRequests: 1, timePeriodInMilliseconds: 600000}]
    keySelector: "#[attributes.method]"
`)
	gwURL := fmt.Sprintf("http://127.0.0.1:%d/v1/b", gwPort)
	kubetest.Eventually(t, time.Minute, "rate limit on the HTTPRoute", func() (bool, string) {
		got := get(gwURL)
		return strings.HasPrefix(got, "429"), got
	})
	for i := 0; i < 3; i++ {
		if got := getHost(ing+"/api/y", "shop.example"); got != "200 web /api/y" {
			t.Fatalf("the HTTPRoute's rate limit reached the Ingress: %s", got)
		}
	}
}
