package arch

import (
	"os"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/flexgw/flexgw/"

// rule is one row of docs/architecture.md's "Allowed imports" table.
type rule struct {
	pattern string
	allowed []string
	any     bool // "*": every flexgw package but cmd/... and agent
	line    int
}

// matches reports whether pkg (module-relative) is pattern's package or,
// for "x/...", x or anything below it.
func matches(pattern, pkg string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

// readRules parses the table under "## Allowed imports".
func readRules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	var rules []rule
	in := false
	for i, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "## ") {
			in = line == "## Allowed imports"
			continue
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), "|")
		if len(cells) != 2 {
			t.Fatalf("docs/architecture.md:%d: want | package | may import |, got %q", i+1, line)
		}
		r := rule{pattern: strings.Trim(strings.TrimSpace(cells[0]), "`"), line: i + 1}
		for _, f := range strings.Fields(cells[1]) {
			switch f = strings.Trim(f, "`"); f {
			case "—":
			case "*":
				r.any = true
			default:
				r.allowed = append(r.allowed, f)
			}
		}
		rules = append(rules, r)
	}
	if len(rules) < 10 {
		t.Fatalf("docs/architecture.md: found %d rules under \"## Allowed imports\"", len(rules))
	}
	return rules
}

// governing is the rule with the longest pattern matching pkg.
func governing(rules []rule, pkg string) *rule {
	var best *rule
	for i := range rules {
		if matches(rules[i].pattern, pkg) && (best == nil || len(rules[i].pattern) > len(best.pattern)) {
			best = &rules[i]
		}
	}
	return best
}

func (r *rule) permits(imp string) bool {
	if r.any && !matches("cmd/...", imp) && imp != "agent" {
		return true
	}
	for _, a := range r.allowed {
		if matches(a, imp) {
			return true
		}
	}
	return false
}

// TestImportDirections checks every package's non-test imports against
// the table in docs/architecture.md, so the documented directions are the
// enforced ones.
func TestImportDirections(t *testing.T) {
	rules := readRules(t)
	used := map[*rule]bool{}
	lines := goList(t, "-f", "{{.ImportPath}}|{{join .Imports \",\"}}", "./...")
	if len(lines) < 30 {
		t.Fatalf("go list ./... listed %d packages", len(lines))
	}
	for _, l := range lines {
		path, imports, _ := strings.Cut(l, "|")
		pkg := strings.TrimPrefix(path, module)
		r := governing(rules, pkg)
		if r == nil {
			t.Errorf("%s has no row in docs/architecture.md's Allowed imports: add one", pkg)
			continue
		}
		used[r] = true
		for _, imp := range strings.Split(imports, ",") {
			rel, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			if !r.permits(rel) {
				t.Errorf("%s imports %s, which docs/architecture.md:%d (%s) does not allow", pkg, rel, r.line, r.pattern)
			}
		}
	}
	var unused []string
	for i := range rules {
		if !used[&rules[i]] {
			unused = append(unused, rules[i].pattern)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Errorf("docs/architecture.md has rows for no package: %v", unused)
	}
}

// The rule reader and matcher themselves: a table that allows nothing
// catches an upward import, and the longest pattern governs.
func TestRulesCatchAnUpwardImport(t *testing.T) {
	rules := []rule{
		{pattern: "ir", allowed: []string{"config"}},
		{pattern: "dataplane/...", allowed: []string{"ir", "dataplane/internal/..."}},
		{pattern: "dataplane/internal/...", allowed: nil},
		{pattern: "bench/...", any: true},
	}
	for _, c := range []struct {
		pkg, imp string
		ok       bool
	}{
		{"ir", "config", true},
		{"ir", "dataplane", false},
		{"dataplane", "dataplane/internal/h1", true},
		{"dataplane/internal/h1", "ir", false},
		{"dataplane", "envoy/translate", false},
		{"bench/proxy", "dataplane", true},
		{"bench/proxy", "agent", false},
		{"bench/proxy", "cmd/flexgw", false},
	} {
		r := governing(rules, c.pkg)
		if r == nil {
			t.Fatalf("%s: no rule", c.pkg)
		}
		if got := r.permits(c.imp); got != c.ok {
			t.Errorf("%s → %s: permitted %v, want %v (rule %s)", c.pkg, c.imp, got, c.ok, r.pattern)
		}
	}
}
