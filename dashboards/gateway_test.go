package dashboards

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// gatewayMatchers are the matchers every query needs so that picking one
// gateway (job and instance) narrows every panel to it.
var gatewayMatchers = map[string]string{"job": "$job", "instance": "$instance"}

// missingGateway lists the job/instance matchers a PromQL expression's
// selectors lack (only those named in want).
func missingGateway(t *testing.T, e expression, want []string) []string {
	ex, err := parse(e)
	if err != nil {
		t.Errorf("%s: %q: %v", e.where, e.expr, err)
		return nil
	}
	var missing []string
	parser.Inspect(ex, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		for _, name := range want {
			found := false
			for _, m := range vs.LabelMatchers {
				if m.Name == name && m.Type == labels.MatchRegexp && m.Value == gatewayMatchers[name] {
					found = true
				}
			}
			if !found {
				missing = append(missing, vs.Name+" lacks "+name+`=~"`+gatewayMatchers[name]+`"`)
			}
		}
		return nil
	})
	return missing
}

// TestEveryQuerySelectsTheGateway: every dashboard offers job and
// instance variables, and every panel query, annotation and other
// variable is filtered by both, so a "this gateway" panel never sums all
// gateways.
func TestEveryQuerySelectsTheGateway(t *testing.T) {
	for file, d := range loadDashboards(t) {
		vars := map[string]bool{}
		for _, v := range d.Templating.List {
			vars[v.Name] = true
		}
		for _, name := range []string{"job", "instance"} {
			if !vars[name] {
				t.Errorf("%s: no %s variable", file, name)
			}
		}
	}
	n := 0
	for _, e := range dashboardExpressions(t) {
		want := []string{"job", "instance"}
		switch {
		case strings.HasSuffix(e.where, " variable job"):
			continue
		case strings.HasSuffix(e.where, " variable instance"):
			want = []string{"job"}
		}
		n++
		for _, m := range missingGateway(t, e, want) {
			t.Errorf("%s: %s", e.where, m)
		}
	}
	if n < 40 {
		t.Fatalf("only %d expressions checked; the dashboards were not read", n)
	}
}

// offParts are metric prefixes of parts that are off unless configured,
// and the words a panel showing them must use to say so.
var offParts = map[string]string{
	"flexgw_xds_":            "built-in data plane",
	"flexgw_envoy_":          "built-in data plane",
	"flexgw_shared_storage_": "sharedStorage",
	"flexgw_tcp_":            "kernel probe is off",
}

// TestOffPartsSayWhy: a panel that stays empty unless Envoy, Redis or the
// kernel probe is on says so in its description (Grafana shows it as the
// panel's tooltip), instead of a bare "No data".
func TestOffPartsSayWhy(t *testing.T) {
	checked := 0
	for file, d := range loadDashboards(t) {
		for _, p := range d.allPanels() {
			for _, tg := range p.Targets {
				for prefix, why := range offParts {
					if !strings.Contains(tg.Expr, prefix) {
						continue
					}
					checked++
					if !strings.Contains(p.Description, "No data") || !strings.Contains(p.Description, why) {
						t.Errorf("%s panel %q shows %s* but its description does not say when it has no data (want %q): %q",
							file, p.Title, prefix, why, p.Description)
					}
				}
			}
		}
	}
	if checked < 8 {
		t.Fatalf("only %d panels of optional parts found", checked)
	}
}

// TestDashboardLinter runs Grafana's dashboard-linter with --strict (a
// warning fails too) on every dashboard. scripts/tools.sh builds it once
// into a cache outside the work tree (make test's deps step does that
// first; here it is a no-op unless the cache is cold).
func TestDashboardLinter(t *testing.T) {
	out, err := exec.Command("../scripts/tools.sh", "dashboard-linter").Output()
	if err != nil {
		t.Fatalf("building dashboard-linter: %v", err)
	}
	bin := strings.TrimSpace(string(out))
	files, err := filepath.Glob("*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	for _, f := range files {
		out, err := exec.Command(bin, "lint", "--strict", "--verbose", f).CombinedOutput()
		if err != nil {
			t.Errorf("dashboard-linter lint --strict %s: %v\n%s", f, err, out)
		}
	}
}
