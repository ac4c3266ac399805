package kube_test

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/kube/kubetest"
)

// variablesSecret is a Secret labelled flexgw.io/variables=true.
func variablesSecret(ns, name, typ, prefix string, data map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\n  labels: {flexgw.io/variables: \"true\"}\n", name, ns)
	if prefix != "" {
		fmt.Fprintf(&b, "  annotations: {flexgw.io/variable-prefix: %s}\n", prefix)
	}
	fmt.Fprintf(&b, "type: %s\ndata:\n", typ)
	for k, v := range data {
		fmt.Fprintf(&b, "  %s: %s\n", k, base64.StdEncoding.EncodeToString([]byte(v)))
	}
	return b.String()
}

// servedCN returns the CommonName of the certificate an https address
// presents, or the error.
func servedCN(addr string) string {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return err.Error()
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// TestSecretsAsVariables resolves $VAR references from the labelled
// Secrets of the resource's namespace: a TLS context's certificate and key
// from a kubernetes.io/tls Secret (prefixed names), an upstream address from
// an Opaque one; a changed Secret reloads (certificate rotation), and a
// resource cannot read another namespace's Secret.
func TestSecretsAsVariables(t *testing.T) {
	cl := kubetest.Start(t)
	c := kubetest.NewClient(t, cl.Kubeconfig)
	c.InstallCRDs(t, crdDir())
	up1, up2 := upstream(t, "one"), upstream(t, "two")
	cert1, key1 := kubetest.SelfSigned(t, "cert-one")
	cert2, key2 := kubetest.SelfSigned(t, "cert-two")
	port := kubetest.FreePort(t)

	c.MustApply(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-b}\n")
	c.MustApply(t, variablesSecret("default", "shop-tls", "kubernetes.io/tls", "SHOP_", map[string]string{"tls.crt": cert1, "tls.key": key1}))
	c.MustApply(t, variablesSecret("default", "backend", "Opaque", "", map[string]string{"backend-url": up1}))
	// A Secret in another namespace, not labelled: never read.
	c.MustApply(t, fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: other, namespace: default}\ndata: {OTHER: %s}\n",
		base64.StdEncoding.EncodeToString([]byte("x"))))
	shopAPI := fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata: {name: shop, namespace: default}
spec:
  address: https://127.0.0.1:%d
  services:
    backend: {address: $BACKEND_URL}
`, port)
	shopTLS := `apiVersion: gateway.mulesoft.com/v1alpha1
kind: PolicyBinding
metadata: {name: shop-tls, namespace: default}
spec:
  targetRef: {name: shop}
  policyRef: {name: tls}
  config:
    certificate:
      crt: $SHOP_TLS_CRT
      key: ${SHOP_TLS_KEY}
`
	c.MustApply(t, shopAPI+"---\n"+shopTLS)
	t.Setenv("FLEXGW_TEST_GATEWAY_SECRET", "gateway-only")
	startGateway(t, cl.Kubeconfig)

	addr := fmt.Sprintf("127.0.0.1:%d", port)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer client.CloseIdleConnections()
	getTLS := func() string {
		resp, err := client.Get("https://" + addr + "/x")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = fmt.Fprint(&b, resp.StatusCode, " ")
		buf := make([]byte, 256)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return b.String()
	}
	kubetest.Eventually(t, time.Minute, "https from the Secrets", func() (bool, string) {
		got := getTLS()
		return got == "200 one /x", got
	})
	if cn := servedCN(addr); cn != "cert-one" {
		t.Fatalf("served certificate %q, want cert-one", cn)
	}
	waitCondition(t, c, shopTLS, "Programmed", "True")

	// Rotation: the Secrets change, the gateway reloads.
	c.MustApply(t, variablesSecret("default", "shop-tls", "kubernetes.io/tls", "SHOP_", map[string]string{"tls.crt": cert2, "tls.key": key2}))
	kubetest.Eventually(t, time.Minute, "rotated certificate", func() (bool, string) {
		cn := servedCN(addr)
		return cn == "cert-two", cn
	})
	c.MustApply(t, variablesSecret("default", "backend", "Opaque", "", map[string]string{"backend-url": up2}))
	kubetest.Eventually(t, time.Minute, "upstream from the changed Secret", func() (bool, string) {
		client.CloseIdleConnections()
		got := getTLS()
		return got == "200 two /x", got
	})

	// Another namespace's resource cannot read default's Secrets, nor a
	// resource an unlabelled Secret: validate's "not set", and the last
	// good configuration keeps serving.
	// Nor does a resource of another namespace than the gateway's read the
	// gateway's own environment (its admin token lives there).
	for _, tc := range []struct{ ns, name, ref string }{{"team-b", "thief", "BACKEND_URL"}, {"default", "peek", "OTHER"},
		{"team-b", "env-thief", "FLEXGW_TEST_GATEWAY_SECRET"}} {
		api := fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata: {name: %s, namespace: %s}
spec:
  address: http://127.0.0.1:%d
  services:
    backend: {address: $%s}
`, tc.name, tc.ns, kubetest.FreePort(t), tc.ref)
		c.MustApply(t, api)
		reason, msg := waitCondition(t, c, api, "Accepted", "False")
		if reason != "Invalid" || !strings.Contains(msg, "environment variable "+tc.ref+" is not set") {
			t.Fatalf("%s/%s resolved $%s: Accepted=False %s %q", tc.ns, tc.name, tc.ref, reason, msg)
		}
	}
	if got := getTLS(); got != "200 two /x" {
		t.Fatalf("last good configuration not serving: %s", got)
	}
}
