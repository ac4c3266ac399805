// Package docs_test runs every fenced snippet of docs/*.md through the
// tool that consumes it: gateway YAML through `flexgw validate`, Prometheus
// configuration through `promtool check config` / `check rules`, systemd
// units through `systemd-analyze verify`, gRPC xDS bootstraps through
// gRPC's own bootstrap parser, JSON through a JSON parser. A snippet no
// tool can check (Grafana provisioning, YAML fragments of a larger
// document, a "```yaml schema" block of placeholders) is at least parsed. Shell command blocks are not run here.
package docs_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc/xds"

	"github.com/flexgw/flexgw/internal/testutil"
)

// snippet is one fenced block of a doc.
type snippet struct {
	file string
	line int
	lang string
	// schema marks a block that shows a document's shape with
	// placeholders ("```yaml schema"), or one that only the Kubernetes
	// source accepts ("```yaml kubernetes": a PolicyBinding targeting an
	// HTTPRoute or Ingress, which a conf.d has none of): parsed, not
	// validated. The kube package's API-server tests cover the latter.
	schema bool
	body   string
}

func (s snippet) String() string { return fmt.Sprintf("%s:%d (%s)", s.file, s.line, s.lang) }

func snippets(t *testing.T) []snippet {
	t.Helper()
	files, err := filepath.Glob("*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs: %v", err)
	}
	var out []snippet
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cur *snippet
		var body strings.Builder
		for i, line := range strings.Split(string(b), "\n") {
			trimmed := strings.TrimSpace(line)
			switch {
			case cur == nil && strings.HasPrefix(trimmed, "```"):
				lang, rest, _ := strings.Cut(strings.TrimPrefix(trimmed, "```"), " ")
				cur = &snippet{file: f, line: i + 1, lang: lang, schema: strings.Contains(rest, "schema") || strings.Contains(rest, "kubernetes")}
				body.Reset()
			case cur != nil && trimmed == "```":
				cur.body = body.String()
				out = append(out, *cur)
				cur = nil
			case cur != nil:
				body.WriteString(line)
				body.WriteByte('\n')
			}
		}
		if cur != nil {
			t.Errorf("%s:%d: fence never closed", f, cur.line)
		}
	}
	return out
}

// TestMain removes the gateway build testutil.FlexgwBinary made when
// make test did not provide one.
func TestMain(m *testing.M) { testutil.Main(m) }

func tool(t *testing.T, s snippet, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("%s: %s %s: %v\n%s\nsnippet:\n%s", s, name, strings.Join(args, " "), err, out.String(), s.body)
	}
}

var envRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

var credentialsFile = regexp.MustCompile(`(credentials_file|bearer_token_file|password_file|key_file|cert_file|ca_file):\s*(\S+)`)

// TestSnippets checks every fenced snippet of docs/*.md.
func TestSnippets(t *testing.T) {
	checked := map[string]int{}
	for _, s := range snippets(t) {
		dir := t.TempDir()
		switch {
		case s.lang == "yaml" && strings.Contains(s.body, "apiVersion: gateway.mulesoft.com/") && !s.schema:
			bin := testutil.FlexgwBinary(t)
			if err := os.WriteFile(filepath.Join(dir, "snippet.yaml"), []byte(s.body), 0o644); err != nil {
				t.Fatal(err)
			}
			// $VARs name secrets the reader supplies; any value will do.
			cmd := exec.Command(bin, "validate", dir)
			cmd.Env = os.Environ()
			for _, m := range envRef.FindAllStringSubmatch(s.body, -1) {
				cmd.Env = append(cmd.Env, m[1]+"=docs-example")
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s: flexgw validate: %v\n%s\nsnippet:\n%s", s, err, out, s.body)
			}
			checked["flexgw validate"]++
		case s.lang == "yaml" && strings.Contains(s.body, "scrape_configs:"):
			// Files the job reads exist on a Prometheus host; here a
			// scratch file stands for each.
			body := credentialsFile.ReplaceAllStringFunc(s.body, func(m string) string {
				k, _, _ := strings.Cut(m, ":")
				f := filepath.Join(dir, k)
				if err := os.WriteFile(f, []byte("x\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				return k + ": " + f
			})
			path := filepath.Join(dir, "prometheus.yml")
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			tool(t, s, "promtool", "check", "config", path)
			checked["promtool check config"]++
		case s.lang == "yaml" && regexp.MustCompile(`(?m)^groups:`).MatchString(s.body):
			path := filepath.Join(dir, "rules.yml")
			if err := os.WriteFile(path, []byte(s.body), 0o644); err != nil {
				t.Fatal(err)
			}
			tool(t, s, "promtool", "check", "rules", path)
			checked["promtool check rules"]++
		case s.lang == "yaml":
			var v any
			if err := yaml.Unmarshal([]byte(s.body), &v); err != nil {
				t.Errorf("%s: YAML: %v\n%s", s, err, s.body)
			}
			checked["YAML parse"]++
		case s.lang == "ini" && strings.Contains(s.body, "[Service]"):
			bin := testutil.FlexgwBinary(t)
			unit := "[Unit]\nDescription=docs snippet\n\n" + strings.ReplaceAll(s.body, "/usr/bin/flexgw", bin)
			path := filepath.Join(dir, "flexgw.service")
			if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("systemd-analyze", "verify", path)
			out, err := cmd.CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("%s: systemd-analyze verify: %v\n%s", s, err, out)
			}
			checked["systemd-analyze verify"]++
		case s.lang == "json" && strings.Contains(s.body, `"xds_servers"`):
			if _, err := xds.NewXDSResolverWithConfigForTesting([]byte(s.body)); err != nil {
				t.Errorf("%s: gRPC xDS bootstrap: %v", s, err)
			}
			checked["gRPC xDS bootstrap"]++
		case s.lang == "json":
			// Documented documents may elide values ("..."), which is
			// still valid JSON; anything else must parse.
			if !json.Valid([]byte(s.body)) {
				t.Errorf("%s: not valid JSON:\n%s", s, s.body)
			}
			checked["JSON parse"]++
		}
	}
	t.Logf("snippets checked: %v", checked)
	for _, want := range []string{"flexgw validate", "promtool check config", "systemd-analyze verify", "gRPC xDS bootstrap"} {
		if checked[want] == 0 {
			t.Errorf("no snippet went through %s: is the extraction broken?", want)
		}
	}
}
