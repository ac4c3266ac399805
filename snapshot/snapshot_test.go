package snapshot_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/dataplane"
	"github.com/flexgw/flexgw/envoy/translate"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
	"github.com/flexgw/flexgw/snapshot"
)

// A configuration with a shaping policy (response-timeout-flex), a policy
// Shape moves (cors-flex, first whatever its order) and one with a warning
// (an IP allowlist reading X-Forwarded-For from any client).
const gatewayYAML = `apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: orders
spec:
  address: http://0.0.0.0:8081/orders
  services:
    orders:
      address: http://127.0.0.1:9000
      routes:
        - config:
            destinationPath: /
  policies:
    - policyRef:
        name: response-timeout-flex
      config:
        timeout: 7
    - policyRef:
        name: ip-allowlist-flex
      config:
        ips: ["10.0.0.0/8"]
    - policyRef:
        name: cors-flex
      config:
        publicResource: true
`

func writeDir(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gateway.yaml"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The snapshot LoadDir returns is complete: policies checked, shaping
// applied, warnings collected.
func TestLoadDirShapesAndWarns(t *testing.T) {
	s, err := snapshot.LoadDir(writeDir(t, gatewayYAML), 3)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != 3 || s.Hash == "" {
		t.Errorf("version %d hash %q", s.Version, s.Hash)
	}
	api := s.APIs()[0]
	if got := api.Routes[0].Timeout; got != 7*time.Second {
		t.Errorf("route timeout %v: response-timeout-flex not shaped in", got)
	}
	for _, p := range api.Policies {
		if p.Name == "cors-flex" && p.Order != policy.CORSOrder {
			t.Errorf("cors-flex order %d: not moved first (%d)", p.Order, policy.CORSOrder)
		}
	}
	if len(s.Warnings) == 0 || !strings.Contains(strings.Join(s.Warnings, "\n"), "ip-allowlist-flex") {
		t.Errorf("warnings %q: the allowlist's X-Forwarded-For warning is missing", s.Warnings)
	}
}

// A bad policy configuration is refused with its file, line and field.
func TestLoadDirChecksPolicies(t *testing.T) {
	_, err := snapshot.LoadDir(writeDir(t, strings.Replace(gatewayYAML, "timeout: 7", "timeout: -1", 1)), 1)
	if err == nil || !strings.Contains(err.Error(), "gateway.yaml:") || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("got %v, want an error naming gateway.yaml and the timeout field", err)
	}
}

// ir's promise, kept: nothing the data planes do with a served snapshot
// changes it. The snapshot is compared, as JSON, with a second build of
// the same directory after both data planes' checks, the Envoy translation
// and every binding's middleware build ran on it.
func TestServedSnapshotIsNotMutatedByItsConsumers(t *testing.T) {
	dir := writeDir(t, gatewayYAML)
	served, err := snapshot.LoadDir(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	pristine, err := snapshot.LoadDir(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := dataplane.Check(served); err != nil {
		t.Fatal(err)
	}
	if _, err := translate.Translate(served, translate.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, a := range served.APIs() {
		for _, p := range a.Policies {
			d, _ := policy.Lookup(p.Name)
			if _, err := d.Build(policy.Env{Snapshot: served, API: a}, p); err != nil {
				t.Fatalf("%s: %v", p.Name, err)
			}
		}
	}
	if got, want := asJSON(t, served), asJSON(t, pristine); got != want {
		t.Fatalf("the served snapshot changed after it was built:\n got %s\nwant %s", got, want)
	}
}

func asJSON(t *testing.T, s *ir.Snapshot) string {
	t.Helper()
	c := *s
	c.CreatedAt = time.Time{}
	b, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
