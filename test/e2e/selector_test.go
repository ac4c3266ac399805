package e2e

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Flex's automated policy: a PolicyBinding with targetRef.kind Selector
// applies to every ApiInstance whose labels match, and follows label
// changes on reload.
func TestSelectorBindingFollowsLabels(t *testing.T) {
	up := startUpstream(t, "up", nil)
	p1, p2, p3 := freePort(t), freePort(t), freePort(t)
	api := func(name string, port int, labelled bool) string {
		labels := ""
		if labelled {
			labels = "  labels:\n    secured-by-automated-policy: yes\n"
		}
		return fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: %s
%sspec:
  address: http://127.0.0.1:%d
  services:
    upstream:
      address: %s
`, name, labels, port, up.URL)
	}
	const binding = `apiVersion: gateway.mulesoft.com/v1alpha1
kind: PolicyBinding
metadata:
  name: security-protection
spec:
  targetRef:
    kind: Selector
    selector:
      kind: ApiInstance
      labels:
        secured-by-automated-policy: yes
  policyRef:
    name: http-basic-authentication-flex
  config:
    username: chris
    password: admin
`
	dir := writeConfig(t, map[string]string{
		"apis.yaml":    api("products-api", p1, true) + "---\n" + api("users-api", p2, true) + "---\n" + api("public-api", p3, false),
		"binding.yaml": binding,
	})
	startGateway(t, dir)
	status := func(port int, auth bool) int {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/x", port), nil)
		if auth {
			req.SetBasicAuth("chris", "admin")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		port int
		auth bool
		want int
	}{{p1, false, 401}, {p1, true, 200}, {p2, false, 401}, {p3, false, 200}} {
		if got := status(c.port, c.auth); got != c.want {
			t.Errorf("port %d auth=%v: status %d, want %d", c.port, c.auth, got, c.want)
		}
	}

	// Reload: users-api loses the label, public-api gains it.
	writeFile(t, dir+"/apis.yaml", api("products-api", p1, true)+"---\n"+api("users-api", p2, false)+"---\n"+api("public-api", p3, true))
	eventually(t, 20*time.Second, func() string {
		if s := status(p2, false); s != 200 {
			return fmt.Sprintf("users-api without the label: status %d, want 200", s)
		}
		if s := status(p3, false); s != 401 {
			return fmt.Sprintf("public-api with the label: status %d, want 401", s)
		}
		return ""
	})
	if s := status(p1, false); s != 401 {
		t.Errorf("products-api still labelled: status %d, want 401", s)
	}
}

// Flex's TLS page "all API instances" example: a tls binding with a
// Selector of kind ApiInstance and no labels gives every https API the
// certificate.
func TestSelectorTLSForAllAPIs(t *testing.T) {
	up := startUpstream(t, "up", nil)
	cert, key := selfSigned(t, false)
	p1, p2 := freePort(t), freePort(t)
	indent := func(s string) string {
		return "        " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n        ")
	}
	cfg := fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: ingress-a
spec:
  address: https://127.0.0.1:%d
  services:
    upstream:
      address: %s
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: ingress-b
  namespace: team-b
spec:
  address: https://127.0.0.1:%d
  services:
    upstream:
      address: %s
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: PolicyBinding
metadata:
  name: ingress-https-tls
spec:
  targetRef:
    kind: Selector
    selector:
      kind: ApiInstance
  policyRef:
    name: tls
  config:
    certificate:
      key: |
%s
      crt: |
%s
    alpn:
      - http/1.1
      - h2
    minversion: "1.2"
    maxversion: "1.3"
`, p1, up.URL, p2, up.URL, indent(key), indent(cert))
	startGateway(t, writeConfig(t, map[string]string{"tls.yaml": cfg}))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, port := range []int{p1, p2} {
		resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/x", port))
		if err != nil {
			t.Errorf("https on %d: %v", port, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.TLS == nil {
			t.Errorf("https on %d: status %d", port, resp.StatusCode)
		}
	}
}
