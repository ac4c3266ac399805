package policy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/policy"
)

// tracing-flex bound to an ApiInstance lands on every route of the API,
// with Flex's defaults for percentages left out.
func TestTracingPolicyShapesRoutes(t *testing.T) {
	dir := t.TempDir()
	cfg := `apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: orders
spec:
  address: http://0.0.0.0:18081
  services:
    svc:
      address: http://127.0.0.1:9000
  policies:
    - policyRef:
        name: tracing-flex
      config:
        sampling:
          random: 25
        spanName: orders
        labels:
          - name: env
            type: environment
            keyName: ENV
            defaultValue: dev
`
	if err := os.WriteFile(filepath.Join(dir, "api.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := compileDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := policy.Shape(s); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range s.APIs() {
		for _, r := range a.Routes {
			o := r.Tracing
			if o == nil {
				t.Fatalf("route %s has no tracing override", r.Name)
			}
			if o.Sampling.Client != 100 || o.Sampling.Random != 25 || o.Sampling.Overall != 100 || o.SpanName != "orders" ||
				len(o.Labels) != 1 || o.Labels[0].Key != "ENV" {
				t.Fatalf("override %+v", o)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no route")
	}
}

func TestTracingPolicyConfigErrors(t *testing.T) {
	cases := []struct {
		cfg, field string
	}{
		{`{"sampling":{"client":101}}`, "config.sampling.client"},
		{`{"sampling":{"random":-1}}`, "config.sampling.random"},
		{`{"sampling":{"overall":"all"}}`, "config.sampling.overall"},
		{`{"labels":[{"type":"literal","defaultValue":"x"}]}`, "config.labels[0].name"},
		{`{"labels":[{"name":"a","type":"literal"},{"name":"a","type":"literal"}]}`, "config.labels[1].name"},
		{`{"labels":[{"name":"a","type":"cookie","keyName":"k"}]}`, "config.labels[0].type"},
		{`{"labels":[{"name":"a","type":"requestHeader"}]}`, "config.labels[0].keyName"},
	}
	for _, c := range cases {
		err := policy.Check(policytest.Policy("tracing-flex", c.cfg))
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: error %v, want one naming %s", c.cfg, err, c.field)
		}
	}
	if err := policy.Check(policytest.Policy("tracing-flex", `{}`)); err != nil {
		t.Errorf("empty config (all defaults): %v", err)
	}
}
