package kube_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/kube/kubetest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ingressEvents returns "type reason message" of each Event about Ingress
// ns/name.
func ingressEvents(t *testing.T, c *kubetest.Client, ns, name string) []string {
	t.Helper()
	list, err := c.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "events"}).Namespace(ns).List(context.Background(),
		metav1.ListOptions{FieldSelector: "involvedObject.kind=Ingress,involvedObject.name=" + name})
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, fmt.Sprintf("%s %s %s", e.Object["type"], e.Object["reason"], e.Object["message"]))
	}
	return out
}

// TestIngressSecretEvent: an Ingress whose TLS Secret cannot be served
// gets one Warning Event naming the Secret and the reason, not one per
// reload, while its routes keep serving.
func TestIngressSecretEvent(t *testing.T) {
	t.Parallel() // own API server, gateway and ports: independent of the others
	cl := kubetest.Start(t)
	c := kubetest.NewClient(t, cl.Kubeconfig)
	c.InstallCRDs(t, crdDir())
	c.MustApply(t, backendService(t, "default", "web"))
	ingPort, tlsPort := kubetest.FreePort(t), kubetest.FreePort(t)
	ingress := func(name, secret, path string) string {
		return fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: %s, namespace: default}
spec:
  ingressClassName: flexgw
  tls: [{hosts: [%[1]s.example], secretName: %s}]
  rules:
  - http:
      paths:
      - {path: %s, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`, name, secret, path)
	}
	c.MustApply(t, "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: flexgw}\nspec: {controller: flexgw.io/ingress-controller}\n---\n"+
		ingress("shop", "missing-tls", "/shop"))
	first := startGateway(t, cl.Kubeconfig, "--ingress-address", fmt.Sprintf("http://127.0.0.1:%d", ingPort),
		"--ingress-tls-address", fmt.Sprintf("https://127.0.0.1:%d", tlsPort))
	waitServed(t, fmt.Sprintf("http://127.0.0.1:%d/shop/1", ingPort), "200 web /shop/1")

	kubetest.Eventually(t, time.Minute, "Warning Event on Ingress shop", func() (bool, string) {
		evs := ingressEvents(t, c, "default", "shop")
		return len(evs) == 1 && strings.HasPrefix(evs[0], "Warning InvalidCertificateRef spec.tls secretName missing-tls: Secret default/missing-tls not found"), fmt.Sprint(evs)
	})

	// Another broken Ingress: its Event appears after passes that saw
	// shop's problem again, which posted nothing new.
	c.MustApply(t, ingress("cart", "cart-tls", "/cart"))
	waitServed(t, fmt.Sprintf("http://127.0.0.1:%d/cart/1", ingPort), "200 web /cart/1")
	kubetest.Eventually(t, time.Minute, "Warning Event on Ingress cart", func() (bool, string) {
		evs := ingressEvents(t, c, "default", "cart")
		return len(evs) == 1 && strings.Contains(evs[0], "Secret default/cart-tls not found"), fmt.Sprint(evs)
	})
	if evs := ingressEvents(t, c, "default", "shop"); len(evs) != 1 {
		t.Fatalf("shop's one problem posted %d Events: %v", len(evs), evs)
	}

	// The next status writer (the first gateway stopped, releasing the
	// Lease) does not post it again: the Event's name is the problem's.
	first.Stop()
	startGateway(t, cl.Kubeconfig, "--ingress-address", fmt.Sprintf("http://127.0.0.1:%d", ingPort),
		"--ingress-tls-address", fmt.Sprintf("https://127.0.0.1:%d", tlsPort))
	c.MustApply(t, ingress("bag", "bag-tls", "/bag"))
	kubetest.Eventually(t, time.Minute, "Warning Event on Ingress bag", func() (bool, string) {
		evs := ingressEvents(t, c, "default", "bag")
		return len(evs) == 1, fmt.Sprint(evs)
	})
	if evs := ingressEvents(t, c, "default", "shop"); len(evs) != 1 {
		t.Fatalf("shop's one problem posted %d Events: %v", len(evs), evs)
	}
}
