package kube_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/kube/kubetest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// tlsSecretManifest is a kubernetes.io/tls Secret (not labelled as
// variables: certificates are read from TLS Secrets by reference).
func tlsSecretManifest(ns, name, crt, key string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: %s, namespace: %s}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: %s\n  tls.key: %s\n",
		name, ns, base64.StdEncoding.EncodeToString([]byte(crt)), base64.StdEncoding.EncodeToString([]byte(key)))
}

// httpsGet does a real TLS handshake to addr asking for serverName, and
// verifies the server's certificate against ca (so the certificate chosen
// by SNI is checked, not just any): it returns "STATUS BODY" or the error.
func httpsGet(addr, serverName, ca, path string) string {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(ca))
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: serverName, RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
		}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: tr}).Get("https://" + serverName + path)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

// listenerCond returns status, reason and message of a Gateway listener's
// condition.
func listenerCond(t *testing.T, c *kubetest.Client, ns, gw, listener, typ string) (string, string, string) {
	t.Helper()
	o, err := c.Get(t, kubetest.Decode(t, fmt.Sprintf("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: %s, namespace: %s}\n", gw, ns))[0])
	if err != nil {
		return "", "", err.Error()
	}
	ls, _, _ := unstructured.NestedSlice(o.Object, "status", "listeners")
	for _, l := range ls {
		m := l.(map[string]any)
		if m["name"] != listener {
			continue
		}
		conds, _ := m["conditions"].([]any)
		for _, cd := range conds {
			cm := cd.(map[string]any)
			if cm["type"] == typ {
				return fmt.Sprint(cm["status"]), fmt.Sprint(cm["reason"]), fmt.Sprint(cm["message"])
			}
		}
	}
	return "", "", fmt.Sprintf("no %s condition on listener %s: %v", typ, listener, ls)
}

func waitListener(t *testing.T, c *kubetest.Client, ns, gw, listener, typ, status, reason, msgPart string) {
	t.Helper()
	kubetest.Eventually(t, time.Minute, fmt.Sprintf("%s/%s listener %s %s=%s %s", ns, gw, listener, typ, status, reason), func() (bool, string) {
		s, r, m := listenerCond(t, c, ns, gw, listener, typ)
		return s == status && r == reason && strings.Contains(m, msgPart), fmt.Sprintf("status=%s reason=%s message=%q", s, r, m)
	})
}

// TestTLSFromKubernetes serves HTTPS from Gateway listeners'
// certificateRefs and an Ingress's spec.tls, with real handshakes that
// verify the certificate chosen by SNI; a missing, a malformed and a
// cross-namespace Secret are reported on their listener
// (ResolvedRefs=False with the Gateway API's reasons) while everything else
// keeps serving. A cross-namespace reference is attacked: a ReferenceGrant
// in the Gateway's own namespace, or one for another namespace, does not
// open another namespace's Secret; only one in the Secret's namespace does,
// and removing it closes it again.
func TestTLSFromKubernetes(t *testing.T) {
	t.Parallel() // own API server, gateway and ports: independent of the others
	cl, c := gatewayAPICluster(t)

	crtA, keyA := kubetest.SelfSignedFor(t, "cert-a", "a.example")
	crtB, keyB := kubetest.SelfSignedFor(t, "cert-b", "b.example")
	crtShop, keyShop := kubetest.SelfSignedFor(t, "cert-shop", "shop.example")
	crtShared, keyShared := kubetest.SelfSignedFor(t, "cert-shared", "shared.example")
	httpsPort, brokenPort, crossPort, httpPort := kubetest.FreePort(t), kubetest.FreePort(t), kubetest.FreePort(t), kubetest.FreePort(t)
	thiefPort := kubetest.FreePort(t)
	ingPort, ingTLSPort := kubetest.FreePort(t), kubetest.FreePort(t)

	c.MustApply(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: certs}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: team-b}\n")
	c.MustApply(t, backendService(t, "default", "web"))
	c.MustApply(t, backendService(t, "team-b", "loot"))
	c.MustApply(t, tlsSecretManifest("default", "gw-a", crtA, keyA)+"---\n"+tlsSecretManifest("default", "gw-b", crtB, keyB)+"---\n"+
		// Text around PEM blocks is allowed; a "$NAME" there is not a
		// variable (and never reads the gateway's environment).
		tlsSecretManifest("default", "shop-tls", "issued for $HOME by ${FLEXGW_TEST_GATEWAY_SECRET}\n"+crtShop, keyShop)+"---\n"+
		tlsSecretManifest("default", "broken", crtA, keyB)+"---\n"+ // a key that is not the certificate's
		tlsSecretManifest("certs", "shared", crtShared, keyShared))
	c.MustApply(t, fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: flexgw}
spec: {controllerName: flexgw.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: flexgw
  listeners:
  - {name: https-a, port: %[1]d, protocol: HTTPS, hostname: a.example, tls: {certificateRefs: [{name: gw-a}]}}
  - {name: https-b, port: %[1]d, protocol: HTTPS, hostname: b.example, tls: {mode: Terminate, certificateRefs: [{kind: Secret, name: gw-b}]}}
  - {name: broken, port: %[2]d, protocol: HTTPS, hostname: broken.example, tls: {certificateRefs: [{name: broken}]}}
  - {name: missing, port: %[2]d, protocol: HTTPS, hostname: missing.example, tls: {certificateRefs: [{name: missing}]}}
  - {name: cross, port: %[3]d, protocol: HTTPS, tls: {certificateRefs: [{name: shared, namespace: certs}]}}
  - {name: http, port: %[4]d, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1}}]
    backendRefs: [{name: web, port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: flexgw}
spec: {controller: flexgw.io/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: default}
spec:
  ingressClassName: flexgw
  tls: [{hosts: [shop.example], secretName: shop-tls}]
  rules:
  - host: shop.example
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`, httpsPort, brokenPort, crossPort, httpPort))
	// The attacker, in team-b: a Gateway naming certs' Secret, with a
	// ReferenceGrant it wrote in its own namespace.
	c.MustApply(t, fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: thief, namespace: team-b}
spec:
  gatewayClassName: flexgw
  listeners:
  - {name: stolen, port: %d, protocol: HTTPS, tls: {certificateRefs: [{name: shared, namespace: certs}]}}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: self-grant, namespace: team-b}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: team-b}]
  to: [{group: "", kind: Secret}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: loot, namespace: team-b}
spec:
  parentRefs: [{name: thief}]
  rules: [{backendRefs: [{name: loot, port: 80}]}]
`, thiefPort))

	startGateway(t, cl.Kubeconfig, "--ingress-address", fmt.Sprintf("http://127.0.0.1:%d", ingPort),
		"--ingress-tls-address", fmt.Sprintf("https://127.0.0.1:%d", ingTLSPort))

	// Two HTTPS listeners share a port; each name gets its own certificate.
	gwAddr := fmt.Sprintf("127.0.0.1:%d", httpsPort)
	kubetest.Eventually(t, time.Minute, "HTTPS listener a.example", func() (bool, string) {
		got := httpsGet(gwAddr, "a.example", crtA, "/v1/x")
		return got == "200 web /v1/x", got
	})
	if got := httpsGet(gwAddr, "b.example", crtB, "/v1/y"); got != "200 web /v1/y" {
		t.Fatalf("b.example on the shared port with cert-b: %s", got)
	}
	// The listener hostname limits its routes: a.example's certificate does
	// not make b.example's listener serve it the other way round.
	if got := httpsGet(gwAddr, "a.example", crtB, "/v1/x"); !strings.Contains(got, "certificate") {
		t.Fatalf("a.example was served b's certificate: %s", got)
	}
	// The Ingress over TLS.
	ingTLS := fmt.Sprintf("127.0.0.1:%d", ingTLSPort)
	kubetest.Eventually(t, time.Minute, "Ingress over TLS", func() (bool, string) {
		got := httpsGet(ingTLS, "shop.example", crtShop, "/api/z")
		return got == "200 web /api/z", got
	})
	if got := getHost(fmt.Sprintf("http://127.0.0.1:%d/api/z", ingPort), "shop.example"); got != "200 web /api/z" {
		t.Fatalf("the Ingress over plain HTTP: %s", got)
	}

	// Bad references are reported on their listeners, by name.
	waitListener(t, c, "default", "gw", "https-a", "ResolvedRefs", "True", "ResolvedRefs", "")
	waitListener(t, c, "default", "gw", "https-a", "Programmed", "True", "Programmed", "")
	waitListener(t, c, "default", "gw", "broken", "ResolvedRefs", "False", "InvalidCertificateRef", "Secret default/broken: tls.crt and tls.key")
	waitListener(t, c, "default", "gw", "broken", "Programmed", "False", "Invalid", "")
	waitListener(t, c, "default", "gw", "missing", "ResolvedRefs", "False", "InvalidCertificateRef", "Secret default/missing not found")
	waitListener(t, c, "default", "gw", "cross", "ResolvedRefs", "False", "RefNotPermitted", "Secret certs/shared")
	waitListener(t, c, "team-b", "thief", "stolen", "ResolvedRefs", "False", "RefNotPermitted", "Secret certs/shared")
	for _, p := range []int{brokenPort, crossPort, thiefPort} {
		if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), 2*time.Second); err == nil {
			conn.Close()
			t.Fatalf("port %d of a listener without a usable certificate is open", p)
		}
	}
	waitServed(t, fmt.Sprintf("http://127.0.0.1:%d/v1/h", httpPort), "200 web /v1/h")

	// certs grants Gateways of default (only) its Secret "shared".
	grant := `apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: default-gateways, namespace: certs}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: default}]
  to: [{group: "", kind: Secret, name: shared}]
`
	c.MustApply(t, grant)
	crossAddr := fmt.Sprintf("127.0.0.1:%d", crossPort)
	kubetest.Eventually(t, time.Minute, "cross-namespace certificate with a ReferenceGrant", func() (bool, string) {
		got := httpsGet(crossAddr, "shared.example", crtShared, "/v1/c")
		return got == "200 web /v1/c", got
	})
	waitListener(t, c, "default", "gw", "cross", "ResolvedRefs", "True", "ResolvedRefs", "")
	// ...which team-b's Gateway does not get.
	waitListener(t, c, "team-b", "thief", "stolen", "ResolvedRefs", "False", "RefNotPermitted", "Secret certs/shared")
	if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", thiefPort), 2*time.Second); err == nil {
		conn.Close()
		t.Fatalf("team-b's Gateway serves certs' certificate")
	}
	// Withdrawn grant: the listener stops serving the certificate.
	if err := c.Resource(t, kubetest.Decode(t, grant)[0]).Delete(context.Background(), "default-gateways", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitListener(t, c, "default", "gw", "cross", "ResolvedRefs", "False", "RefNotPermitted", "Secret certs/shared")
	kubetest.Eventually(t, time.Minute, "port closed after the grant is withdrawn", func() (bool, string) {
		conn, err := net.DialTimeout("tcp", crossAddr, 2*time.Second)
		if err != nil {
			return true, ""
		}
		conn.Close()
		return false, "still open"
	})

	// A good Secret turned bad: its listener reports it, the others and
	// the Ingress keep serving.
	c.MustApply(t, tlsSecretManifest("default", "gw-b", crtB, keyA))
	waitListener(t, c, "default", "gw", "https-b", "ResolvedRefs", "False", "InvalidCertificateRef", "Secret default/gw-b")
	if got := httpsGet(gwAddr, "a.example", crtA, "/v1/x"); got != "200 web /v1/x" {
		t.Fatalf("a.example after b's Secret broke: %s", got)
	}
	if got := httpsGet(ingTLS, "shop.example", crtShop, "/api/z"); got != "200 web /api/z" {
		t.Fatalf("the Ingress after b's Secret broke: %s", got)
	}
}
