package kube_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flexgw/flexgw/kube/kubetest"
)

// TestGatewayListenersNotValidAndUnservedAttachments checks the Gateway
// status rules the conformance suite found flexgw breaking: a Gateway
// with an invalid listener reports Accepted reason ListenersNotValid
// (False when none is valid), and a route attached to an HTTPS listener
// whose certificate is missing counts in its attachedRoutes, is Accepted,
// reports whether its backends resolve, and is not served there while
// the Gateway's HTTP listener serves it.
func TestGatewayListenersNotValidAndUnservedAttachments(t *testing.T) {
	t.Parallel() // own API server, gateway and ports: independent of the others
	cl, c := gatewayAPICluster(t)
	c.MustApply(t, backendService(t, "default", "web"))
	port, tlsPort := kubetest.FreePort(t), kubetest.FreePort(t)
	c.MustApply(t, gatewayYAML(fmt.Sprintf(` [{name: http, port: %d, protocol: HTTP},
    {name: udp, port: %d, protocol: UDP},
    {name: tls, port: %d, protocol: HTTPS, tls: {certificateRefs: [{name: does-not-exist}]}}]`, port, port+1, tlsPort))+`
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: udp-only, namespace: default}
spec:
  gatewayClassName: flexgw
  listeners: [{name: udp, port: 5353, protocol: UDP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: both, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: http}, {name: gw, sectionName: tls}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: unserved, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: tls}]
  rules: [{backendRefs: [{name: does-not-exist, port: 80}]}]
`)
	startGateway(t, cl.Kubeconfig)

	for gw, want := range map[string]string{"gw": "True ListenersNotValid", "udp-only": "False ListenersNotValid"} {
		kubetest.Eventually(t, time.Minute, "Gateway "+gw+" Accepted", func() (bool, string) {
			got := gatewayCond(t, c, gw, "Accepted")
			return got == want, "got " + got + ", want " + want
		})
	}
	kubetest.Eventually(t, time.Minute, "listener tls attachedRoutes", func() (bool, string) {
		s, r, _ := listenerCond(t, c, "default", "gw", "tls", "Programmed")
		_, a := listenerKinds(t, c, "tls")
		got := fmt.Sprintf("Programmed=%s %s attached=%d", s, r, a)
		return got == "Programmed=False Invalid attached=2", got
	})
	waitRouteCond(t, c, "default", "both", "tls", "Accepted", "True Accepted")
	waitRouteCond(t, c, "default", "unserved", "tls", "ResolvedRefs", "False BackendNotFound")
	waitRouteCond(t, c, "default", "both", "http", "Accepted", "True Accepted")
	kubetest.Eventually(t, time.Minute, "the HTTP listener serves the route", func() (bool, string) {
		got := get(fmt.Sprintf("http://127.0.0.1:%d/x", port))
		return len(got) > 3 && got[:3] == "200", got
	})
	// The HTTPS listener has no certificate: its port stays closed.
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("https://127.0.0.1:%d/x", tlsPort)); err == nil {
		resp.Body.Close()
		t.Errorf("the listener without a certificate answered %d", resp.StatusCode)
	}
}

// gatewayCond returns "Status Reason" of a condition of default/name.
func gatewayCond(t *testing.T, c *kubetest.Client, name, typ string) string {
	t.Helper()
	o, err := c.Get(t, kubetest.Decode(t, fmt.Sprintf("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: %s, namespace: default}\n", name))[0])
	if err != nil {
		return err.Error()
	}
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, cd := range conds {
		m, _ := cd.(map[string]any)
		if m["type"] == typ {
			return fmt.Sprintf("%v %v", m["status"], m["reason"])
		}
	}
	return "no " + typ + " condition"
}
