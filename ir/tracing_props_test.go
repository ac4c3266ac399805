package ir_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/flexgw/flexgw/ir"
)

// Flex writes tracing's resourceAttributes as a nested map; it is
// flattened into dotted provider properties.
func TestTracingNestedPropertiesFlattened(t *testing.T) {
	dir := t.TempDir()
	cfg := `apiVersion: gateway.mulesoft.com/v1beta1
kind: Configuration
metadata:
  name: tracing
spec:
  tracing:
    provider:
      type: opentelemetry
      properties:
        address: h2://127.0.0.1:4317
        resourceAttributes:
          deployment.environment: prod
          team: core
`
	if err := os.WriteFile(filepath.Join(dir, "t.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := ir.LoadDir(dir, ir.CompileOptions{Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := s.Tracing.Provider.Properties
	if got["resourceAttributes.deployment.environment"] != "prod" || got["resourceAttributes.team"] != "core" || got["address"] != "h2://127.0.0.1:4317" {
		t.Errorf("properties = %v", got)
	}
}
