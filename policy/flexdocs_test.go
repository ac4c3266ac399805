package policy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
	"github.com/flexgw/flexgw/snapshot"
)

// compileDir builds a config directory's snapshot as the agent and
// `flexgw validate` do (checked and shaped).
func compileDir(dir string) (*ir.Snapshot, error) { return snapshot.LoadDir(dir, 1) }

// TestFlexDocsConfigs: every testdata/flexdocs/*.yaml is an ApiInstance
// carrying a policy exactly as Flex's Local Mode page documents it; each
// compiles, shapes and builds on the built-in data plane.
func TestFlexDocsConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/flexdocs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			dir := t.TempDir()
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "api.yaml"), b, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := compileDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, a := range s.APIs() {
				for _, p := range a.Policies {
					d, _ := policy.Lookup(p.Name)
					if _, err := d.Build(policy.Env{Snapshot: s, API: a}, p); err != nil {
						t.Fatalf("%s: build: %v", p.Name, err)
					}
					n++
				}
			}
			for _, svc := range s.Services { // outbound policies
				for _, p := range svc.Policies {
					d, _ := policy.Lookup(p.Name)
					if _, err := d.Build(policy.Env{Snapshot: s, Service: svc}, p); err != nil {
						t.Fatalf("%s: build: %v", p.Name, err)
					}
					n++
				}
			}
			if n == 0 {
				t.Fatal("no policy in fixture")
			}
		})
	}
}

// A bad value in a Flex config is reported with the file, line and field.
func TestFlexDocsConfigErrorsNameFileAndField(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("testdata/flexdocs/json-threat-protection-flex.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(b), "maxContainerDepth: 10", "maxContainerDepth: -7", 1)
	if err := os.WriteFile(filepath.Join(dir, "threat.yaml"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = compileDir(dir)
	if err == nil || !strings.Contains(err.Error(), "threat.yaml:") || !strings.Contains(err.Error(), "config.maxContainerDepth") {
		t.Fatalf("error %v, want file and field", err)
	}
}

// issue13Policies are the policies whose docs/policies.md snippets
// TestDocsPolicySnippets checks (others name files of the reader's host).
var issue13Policies = map[string]bool{
	"credential-injection-basic-auth-flex": true, "credential-injection-api-key-flex": true, "credential-injection-oauth2-flex": true,
	"json-threat-protection-flex": true, "xml-threat-protection-flex": true,
	"stream-idle-timeout-flex": true, "idle-timeout-flex": true, "tracing-flex": true, "http-caching-flex": true,
	"oauth2-token-introspection-flex": true, "openidconnect-access-token-enforcement-flex": true, "ldap-authentication-flex": true,
	"native-ext-authz-flex": true, "native-ext-proc-flex": true, "spec-validation-flex": true, "native-aws-lambda": true, "native-aws-signature-flex": true,
}

// TestDocsPolicySnippets: every ```yaml block starting with "config:" under
// a docs/policies.md heading naming one of issue13Policies is a valid
// configuration of that policy (what `flexgw validate` checks).
func TestDocsPolicySnippets(t *testing.T) {
	b, err := os.ReadFile("../docs/policies.md")
	if err != nil {
		t.Fatal(err)
	}
	heading, checked := "", 0
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if h, ok := strings.CutPrefix(l, "## "); ok {
			heading = strings.TrimSpace(h)
			continue
		}
		if l != "```yaml" {
			continue
		}
		var block []string
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			block = append(block, lines[i])
		}
		if len(block) == 0 || block[0] != "config:" {
			continue
		}
		if !issue13Policies[heading] {
			continue
		}
		if _, ok := policy.Lookup(heading); !ok {
			t.Errorf("docs/policies.md documents %s, which is not registered", heading)
			continue
		}
		cfg, err := yamlConfigToJSON(strings.Join(block, "\n"))
		if err != nil {
			t.Fatalf("docs/policies.md %s: %v", heading, err)
		}
		if err := policy.Check(policytest.Policy(heading, cfg)); err != nil {
			t.Errorf("docs/policies.md %s snippet: %v", heading, err)
		}
		checked++
	}
	if checked < 5 {
		t.Fatalf("only %d snippets checked", checked)
	}
}
