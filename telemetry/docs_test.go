package telemetry_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/snapshot"
	"github.com/flexgw/flexgw/telemetry/tracing"
)

// TestDocsTracingExample loads the tracing Configuration shown in
// docs/observability.md through the real config loader and IR compiler and
// validates it, so the documented example keeps working.
func TestDocsTracingExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "observability.md"))
	if err != nil {
		t.Fatal(err)
	}
	const fence = "```yaml\napiVersion: gateway.mulesoft.com/v1beta1\nkind: Configuration\n"
	i := strings.Index(string(doc), fence)
	if i < 0 {
		t.Fatal("docs/observability.md has no tracing Configuration example")
	}
	body := string(doc[i+len("```yaml\n"):])
	body = body[:strings.Index(body, "```")]
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tracing.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.LoadDir(dir, 1)
	if err != nil {
		t.Fatalf("docs example: %v", err)
	}
	if snap.Tracing == nil {
		t.Fatal("docs example compiled without tracing")
	}
	if err := tracing.Validate(snap.Tracing); err != nil {
		t.Fatalf("docs example: %v", err)
	}
	ep, err := tracing.ParseEndpoint(snap.Tracing)
	if err != nil || ep.Protocol != tracing.ProtocolGRPC || ep.TLS {
		t.Fatalf("docs example endpoint = %+v, %v; want plaintext gRPC", ep, err)
	}
}
