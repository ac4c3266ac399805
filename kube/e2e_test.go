package kube_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/config"
	"github.com/flexgw/flexgw/internal/gatewaytest"
	"github.com/flexgw/flexgw/kube/kubetest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var flexgwBin string

func TestMain(m *testing.M) { gatewaytest.Main(m, &flexgwBin) }

// startGateway runs `flexgw run --kubernetes` outside the cluster with
// kubeconfig and waits until it serves.
func startGateway(t testing.TB, kubeconfig string, extra ...string) *gatewaytest.Process {
	t.Helper()
	args := append([]string{"run", "--kubernetes", "--kubeconfig", kubeconfig, "--admin", "127.0.0.1:0",
		"--access-log", "off", "--state-dir", t.TempDir(), "--dataplane", "builtin", "--ebpf", "off",
		"--drain-timeout", "2s"}, extra...)
	return gatewaytest.Start(t, flexgwBin, args, gatewaytest.Options{Timeout: 2 * time.Minute})
}

// upstream answers every request with its name and the path it got, on
// 127.0.0.1.
func upstream(t testing.TB, name string) string {
	t.Helper()
	return upstreamOn(t, "127.0.0.1", name)
}

// upstreamOn is upstream on the address ip.
func upstreamOn(t testing.TB, ip, name string) string {
	t.Helper()
	return serveOn(t, ip, name, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}))
}

// serveOn serves h on ip and a free port.
func serveOn(t testing.TB, ip, name string, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("upstream %s: %v", name, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String()
}

// backendService is a Service named name with one port 80 ("http") and an
// EndpointSlice of one ready endpoint, a stand-in pod that is an upstream
// on the host's address (EndpointSlices may not point at loopback), as a
// cluster's controllers would write them.
func backendService(t testing.TB, ns, name string) string {
	t.Helper()
	return backendServiceFor(t, ns, name, upstreamOn(t, kubetest.HostIP(t), name))
}

// backendServiceFor is backendService for an upstream already serving at
// up (on kubetest.HostIP).
func backendServiceFor(t testing.TB, ns, name, up string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(up, "http://"))
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %[1]s-1
  namespace: %[2]s
  labels: {kubernetes.io/service-name: %[1]s}
addressType: IPv4
endpoints: [{addresses: [%[3]s], conditions: {ready: true}}]
ports: [{name: http, port: %[4]s}]
`, name, ns, host, port)
}

// get returns "STATUS BODY" of a GET, or the error.
func get(url string) string {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

func waitServed(t testing.TB, url, want string) {
	t.Helper()
	kubetest.Eventually(t, time.Minute, "GET "+url, func() (bool, string) {
		got := get(url)
		return got == want, "got " + got + ", want " + want
	})
}

// condition returns status, reason and message of an object's condition,
// and whether status.observedGeneration is the object's generation.
func condition(t *testing.T, c *kubetest.Client, manifest, typ string) (status, reason, msg string, current bool) {
	t.Helper()
	obj, err := c.Get(t, kubetest.Decode(t, manifest)[0])
	if err != nil {
		return "", "", err.Error(), false
	}
	og, _, _ := unstructured.NestedInt64(obj.Object, "status", "observedGeneration")
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, cd := range conds {
		m, _ := cd.(map[string]any)
		if m["type"] == typ {
			s, _ := m["status"].(string)
			r, _ := m["reason"].(string)
			msg, _ := m["message"].(string)
			cg, _ := m["observedGeneration"].(int64)
			return s, r, msg, og == obj.GetGeneration() && cg == obj.GetGeneration()
		}
	}
	return "", "", "no " + typ + " condition", false
}

func waitCondition(t *testing.T, c *kubetest.Client, manifest, typ, status string) (reason, msg string) {
	t.Helper()
	kubetest.Eventually(t, time.Minute, typ+"="+status, func() (bool, string) {
		s, r, m, cur := condition(t, c, manifest, typ)
		reason, msg = r, m
		return s == status && cur, fmt.Sprintf("status=%q reason=%q message=%q current=%v", s, r, m, cur)
	})
	return reason, msg
}

func crdDir() string { return filepath.Join("..", "charts", "flexgw", "crds") }

// TestAgainstAPIServer runs the gateway against a real kube-apiserver:
// the CRDs install, the API server rejects what the schema can say with
// the validate message, valid resources serve and reload, invalid ones
// get Accepted=False with validate's text while the last good
// configuration keeps serving, and status carries observedGeneration.
func TestAgainstAPIServer(t *testing.T) {
	t.Parallel() // own API server, gateway and ports: independent of the others
	cl := kubetest.Start(t)
	c := kubetest.NewClient(t, cl.Kubeconfig)
	c.InstallCRDs(t, crdDir())

	// The API server rejects a wrong value with config's own words.
	bad := `apiVersion: gateway.mulesoft.com/v1alpha1
kind: Service
metadata: {name: bad, namespace: default}
spec:
  address: http://127.0.0.1:1
  loadBalancer: random
`
	err := c.Apply(t, bad)
	if err == nil {
		t.Fatal("the API server accepted loadBalancer: random")
	}
	_, verr := config.Parse([]config.File{{Name: "bad.yaml", Data: []byte(bad)}}, config.Options{})
	want := `unknown load balancer "random" (expected round-robin or least-request)`
	if !strings.Contains(err.Error(), want) || verr == nil || !strings.Contains(verr.Error(), want) {
		t.Fatalf("API server said %q, validate said %q; both should say %q", err, verr, want)
	}
	noProto := strings.Replace(bad, "loadBalancer: random", "", 1)
	noProto = strings.Replace(noProto, "http://127.0.0.1:1", "127.0.0.1:1", 1)
	if err := c.Apply(t, noProto); err == nil || !strings.Contains(err.Error(), `"127.0.0.1:1" has no protocol (expected http://host:port or https://host:port)`) {
		t.Fatalf("address without protocol: API server said %v", err)
	}

	up1, up2 := upstream(t, "one"), upstream(t, "two")
	port := kubetest.FreePort(t)
	orders := fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata: {name: orders, namespace: default}
spec:
  address: http://127.0.0.1:%d/orders
  services:
    backend:
      address: %s
`, port, up1)
	c.MustApply(t, orders)

	startGateway(t, cl.Kubeconfig)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitServed(t, base+"/orders/42", "200 one /42")
	waitCondition(t, c, orders, "Accepted", "True")
	waitCondition(t, c, orders, "Programmed", "True")

	// A change reloads.
	c.MustApply(t, strings.Replace(orders, up1, up2, 1))
	waitServed(t, base+"/orders/42", "200 two /42")
	waitCondition(t, c, orders, "Programmed", "True")

	// Resource model: a Service and a route binding in another object.
	catalog := fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata: {name: catalog, namespace: default}
spec:
  address: http://127.0.0.1:%d/catalog
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: Service
metadata: {name: catalog-svc, namespace: default}
spec:
  address: %s
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: PolicyBinding
metadata: {name: catalog-route, namespace: default}
spec:
  targetRef: {name: catalog}
  policyRef: {name: route}
  config:
    destinationRef: {name: catalog-svc}
`, port, up1)
	c.MustApply(t, catalog)
	waitServed(t, base+"/catalog/x", "200 one /x")

	// Valid for the schema, invalid for the gateway: a route to a Service
	// that does not exist. Its status says what validate says; the last
	// good configuration keeps serving.
	broken := `apiVersion: gateway.mulesoft.com/v1alpha1
kind: PolicyBinding
metadata: {name: broken-route, namespace: default}
spec:
  targetRef: {name: catalog}
  policyRef: {name: route}
  rules: [{path: /nowhere}]
  config:
    destinationRef: {name: missing}
`
	c.MustApply(t, broken)
	reason, msg := waitCondition(t, c, broken, "Accepted", "False")
	wantMsg := `PolicyBinding/broken-route: spec.config.destinationRef: Service "missing" not found in namespace "default"`
	if reason != "Invalid" || msg != wantMsg {
		t.Fatalf("Accepted=False reason %q message %q, want Invalid %q", reason, msg, wantMsg)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte(catalog+"---\n"+broken), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(flexgwBin, "validate", dir).CombinedOutput()
	if !strings.Contains(string(out), wantMsg) {
		t.Fatalf("flexgw validate prints %q, status says %q", out, wantMsg)
	}
	if got := get(base + "/orders/1"); got != "200 two /1" {
		t.Fatalf("last good configuration not serving: %s", got)
	}
	// Objects served before keep Programmed=True.
	if s, _, m, _ := condition(t, c, orders, "Programmed"); s != "True" {
		t.Fatalf("orders Programmed=%s (%s) while another object is invalid", s, m)
	}

	// Fixing it (deleting the binding) accepts everything again.
	obj := kubetest.Decode(t, broken)[0]
	if err := c.Resource(t, obj).Delete(context.Background(), obj.GetName(), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.MustApply(t, strings.Replace(orders, up1, up1+"/v2", 1))
	waitServed(t, base+"/orders/42", "200 one /v2/42")
	waitCondition(t, c, orders, "Programmed", "True")
}
