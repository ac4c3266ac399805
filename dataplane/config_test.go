package dataplane

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	servedsnapshot "github.com/flexgw/flexgw/snapshot"
)

// TestServesLocalModeConfigDir compiles a real Flex Local Mode directory
// (both models) with snapshot.LoadDir (what the agent serves) and serves it.
func TestServesLocalModeConfigDir(t *testing.T) {
	orders, users := echoUpstream(t, "orders"), echoUpstream(t, "users")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	inline := fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: orders
spec:
  address: http://127.0.0.1:%d/orders
  services:
    orders:
      address: %s/backend
      routes:
        - rules:
            - path: (/items/.*)
              methods: GET
          config:
            destinationPath: /v1
`, port, orders.URL)
	resources := fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: ingress
spec:
  address: http://127.0.0.1:%d/ingress
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: Service
metadata:
  name: users
spec:
  address: %s
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: PolicyBinding
metadata:
  name: ingress-route
spec:
  targetRef:
    name: ingress
  policyRef:
    name: route
  config:
    destinationRef:
      name: users
  rules:
  - path: /api(/users/.*)
`, port, users.URL)
	if err := os.WriteFile(filepath.Join(dir, "10-inline.yaml"), []byte(inline), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "20-resources.yaml"), []byte(resources), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := servedsnapshot.LoadDir(dir, 1)
	if err != nil {
		t.Fatalf("LoadDir: %v", err)
	}
	g := startGateway(t, s)
	g.addr = fmt.Sprintf("127.0.0.1:%d", port)
	cases := []struct{ path, name, uri string }{
		{"/orders/items/7?x=1", "orders", "/backend/v1/items/7?x=1"},
		{"/ingress/api/users/42", "users", "/users/42"},
	}
	for _, c := range cases {
		resp, body := get(t, http.DefaultClient, g.url(c.path))
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", c.path, resp.StatusCode, body)
		}
		if e := decodeEcho(t, body); e.Name != c.name || e.URI != c.uri {
			t.Errorf("%s: served by %s as %s, want %s as %s", c.path, e.Name, e.URI, c.name, c.uri)
		}
	}
	if resp, _ := get(t, http.DefaultClient, g.url("/orders/other")); resp.StatusCode != 404 {
		t.Errorf("unmatched path: %d", resp.StatusCode)
	}
}
