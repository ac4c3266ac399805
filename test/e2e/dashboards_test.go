package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/flexgw/flexgw/exporters/exportertest"
	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/sharedstore/redistest"
)

// eventOnly lists metric families the dashboards and alerts reference that
// a healthy gateway does not expose until the event they count happens
// (Prometheus client libraries omit a labelled family with no series).
// Each entry says what makes it appear; everything else referenced must be
// in a real scrape.
var eventOnly = map[string]string{
	"flexgw_xds_nacks_total":             "an Envoy rejects a pushed config (NACK)",
	"flexgw_shared_storage_errors_total": "Redis is unreachable",
}

// Every metric referenced by the Grafana dashboards and the alert rules is
// exposed by the real binary: one built-in gateway driven through traffic,
// policy denials, a failed reload, a log exporter and the kernel probe, and
// one on the Envoy data plane (with the stand-in Envoy) for Envoy's metrics.
func TestDashboardsMatchRealMetrics(t *testing.T) {
	referenced := dashboardMetrics(t)
	exposed := map[string]bool{}
	for name := range scrapeBuiltin(t) {
		exposed[name] = true
	}
	for name := range scrapeEnvoy(t) {
		exposed[name] = true
	}
	var missing []string
	for name, where := range referenced {
		if exposed[name] {
			continue
		}
		if why, ok := eventOnly[name]; ok {
			t.Logf("%s (in %s) appears only when %s", name, where, why)
			continue
		}
		missing = append(missing, fmt.Sprintf("%s (in %s)", name, where))
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("referenced but not exposed by a running flexgw: %s", m)
	}
	if len(referenced) < 20 {
		t.Errorf("only %d metrics referenced; the dashboards were not read", len(referenced))
	}
}

// dashboardMetrics parses every PromQL expression in dashboards/ and
// returns the metric families they select (histogram series mapped to
// their family) with one place each appears.
func dashboardMetrics(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	add := func(where, expr string) {
		expr = strings.ReplaceAll(expr, "$__rate_interval", "1m")
		ex, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
		if err != nil {
			t.Errorf("%s: %q: %v", where, expr, err)
			return
		}
		parser.Inspect(ex, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "" {
				out[family(vs.Name)] = where
			}
			return nil
		})
	}
	files, _ := filepath.Glob("../../dashboards/*.json")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		walkExprs(v, func(e string) { add(filepath.Base(f), e) })
	}
	b, err := os.ReadFile("../../dashboards/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Record, Alert, Expr string
			}
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	recorded := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
			add("alerts.yaml "+r.Alert+r.Record, r.Expr)
		}
	}
	for name := range recorded { // recording rules are produced by Prometheus
		delete(out, name)
	}
	return out
}

func walkExprs(v any, fn func(string)) {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if s, ok := val.(string); ok && k == "expr" && s != "" {
				fn(s)
				continue
			}
			walkExprs(val, fn)
		}
	case []any:
		for _, e := range t {
			walkExprs(e, fn)
		}
	}
}

func family(name string) string {
	for _, suf := range []string{"_bucket", "_count", "_sum"} {
		if strings.HasSuffix(name, suf) {
			return strings.TrimSuffix(name, suf)
		}
	}
	return name
}

// scrapeNames returns the metric families in a Prometheus text scrape.
func scrapeNames(body string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			f := strings.Fields(line)
			if len(f) >= 3 {
				out[f[2]] = true
			}
		}
	}
	return out
}

func scrapeBuiltin(t *testing.T) map[string]bool {
	redis := redistest.Start(t)
	hec := exportertest.NewHEC("tok")
	defer hec.Close()
	up := startUpstream(t, "a", nil)
	port, dead := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: dash
spec:
  address: http://127.0.0.1:%d
  services:
    live:
      address: %s
      routes:
        - rules:
            - path: /live(/.*)
    dead:
      address: http://127.0.0.1:%d
      routes:
        - rules:
            - path: /dead(/.*)
  policies:
    - policyRef:
        name: rate-limiting-flex
      config:
        rateLimits:
          - maximumRequests: 20
            timePeriodInMilliseconds: 600000
        clusterizable: true
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: Configuration
metadata:
  name: platform
spec:
  sharedStorage:
    redis:
      address: %s
  logging:
    outputs:
      - name: hec
        type: splunk
        parameters:
          endpoint: %s
          splunk_token: tok
`, port, up.URL, dead, redis.Addr, hec.URL)
	dir := writeConfig(t, map[string]string{"api.yaml": cfg})
	g := startGateway(t, dir, "--ebpf", "on")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	get(t, base+"/dead/x")    // connect failure: 5xx and a failed TCP connect
	for i := 0; i < 30; i++ { // the rest of the 20 admitted, then 429s
		get(t, base+"/live/x")
	}
	get(t, base+"/live/x", "Connection", "close") // a closed connection has a lifetime
	// A rejected reload, then the config back.
	writeFile(t, filepath.Join(dir, "api.yaml"), cfg+"  bogus: true\n")
	eventually(t, 20*time.Second, func() string {
		if _, body, _ := get(t, g.adminURL("/api/v1/status")); !strings.Contains(body, `"result": "failure"`) {
			return "no failed reload yet"
		}
		return ""
	})
	if !hec.WaitUnique(1, 30*time.Second) {
		t.Errorf("no access-log record reached the HEC stand-in")
	}
	var names map[string]bool
	var scrape string
	eventually(t, 20*time.Second, func() string {
		_, body, _ := get(t, g.adminURL("/metrics"))
		names, scrape = scrapeNames(body), body
		for _, m := range []string{"flexgw_tcp_connect_failures_total", "flexgw_tcp_connection_duration_seconds"} {
			if !names[m] {
				return "the probe has not reported " + m + " yet"
			}
		}
		return ""
	})
	// The real scrape passes Prometheus's own linter.
	lint := exec.Command("promtool", "check", "metrics")
	lint.Stdin = strings.NewReader(scrape)
	if out, err := lint.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics on a real scrape: %v\n%s", err, out)
	}
	return names
}

func scrapeEnvoy(t *testing.T) map[string]bool {
	bin := testutil.FakeEnvoyT(t)
	t.Setenv("FAKE_ENVOY_ADS", "1")
	port := freePort(t)
	g := startGateway(t, writeConfig(t, map[string]string{"api.yaml": inlineAPI("dash-envoy", port, "", "http://127.0.0.1:9")}),
		"--dataplane", "envoy", "--envoy-path", bin,
		"--envoy-admin", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--xds-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	_, body, _ := get(t, g.adminURL("/metrics"))
	return scrapeNames(body)
}
