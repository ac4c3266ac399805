package dashboards

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/observe"
	"github.com/flexgw/flexgw/telemetry/metrics"
)

// rateInterval stands in for Grafana's $__rate_interval when parsing; an
// odd value, so a hard-coded range is told apart from the variable.
const rateInterval = "7m13s"

// TestGoldenJSON keeps the committed JSON equal to the Go definitions.
func TestGoldenJSON(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range all {
		testutil.Golden(t, d.File, d.JSON)
	}
}

type grafanaPanel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		Expr       string `json:"expr"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
	// Panels are the panels of a collapsed row.
	Panels []grafanaPanel `json:"panels"`
}

// allPanels lists a dashboard's panels, those inside collapsed rows too.
func (d grafanaDashboard) allPanels() []grafanaPanel {
	var out []grafanaPanel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

type grafanaDashboard struct {
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Expr string `json:"expr"`
		} `json:"list"`
	} `json:"annotations"`
	Panels []grafanaPanel `json:"panels"`
}

// expression is one PromQL expression and where it came from.
type expression struct {
	where string
	expr  string
	// grafana expressions use $__rate_interval; rules use fixed windows.
	grafana bool
}

func loadDashboards(t *testing.T) map[string]grafanaDashboard {
	t.Helper()
	files, err := filepath.Glob("*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	out := map[string]grafanaDashboard{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d grafanaDashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = d
	}
	return out
}

var labelValuesRe = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// dashboardExpressions lists every query of every panel, annotation and
// variable (a variable's label_values(selector, label) contributes its
// selector).
func dashboardExpressions(t *testing.T) []expression {
	var out []expression
	for file, d := range loadDashboards(t) {
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			m := labelValuesRe.FindStringSubmatch(v.Definition)
			if m == nil {
				t.Errorf("%s: variable %s: query %q is not label_values(selector, label)", file, v.Name, v.Definition)
				continue
			}
			out = append(out, expression{where: file + " variable " + v.Name, expr: m[1]})
		}
		for i, a := range d.Annotations.List {
			out = append(out, expression{where: fmt.Sprintf("%s annotation %d", file, i), expr: a.Expr, grafana: true})
		}
		for _, p := range d.allPanels() {
			for i, tg := range p.Targets {
				out = append(out, expression{where: fmt.Sprintf("%s panel %q target %d", file, p.Title, i), expr: tg.Expr, grafana: true})
			}
		}
	}
	return out
}

type rulesFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record string `yaml:"record"`
			Alert  string `yaml:"alert"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// ruleExpressions lists the rules' expressions and the series names the
// recording rules create.
func ruleExpressions(t *testing.T) ([]expression, []string) {
	t.Helper()
	b, err := os.ReadFile("alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rf rulesFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	var exprs []expression
	var recorded []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			name := r.Alert
			if r.Record != "" {
				name = r.Record
				recorded = append(recorded, r.Record)
			}
			exprs = append(exprs, expression{where: "alerts.yaml " + g.Name + "/" + name, expr: r.Expr})
		}
	}
	return exprs, recorded
}

func parse(e expression) (parser.Expr, error) {
	src := e.expr
	if e.grafana {
		src = strings.ReplaceAll(src, "$__rate_interval", rateInterval)
	}
	return parser.NewParser(parser.Options{}).ParseExpr(src)
}

// TestPanelsAreComplete checks what every panel must have: a description,
// a unit, the datasource variable, and rates over $__rate_interval.
func TestPanelsAreComplete(t *testing.T) {
	want, _ := model.ParseDuration(rateInterval)
	for file, d := range loadDashboards(t) {
		hasDS := false
		for _, v := range d.Templating.List {
			if v.Name == "datasource" && v.Type == "datasource" {
				hasDS = true
			}
		}
		if !hasDS {
			t.Errorf("%s: no datasource variable", file)
		}
		ids := map[int]bool{}
		for _, p := range d.allPanels() {
			if ids[p.ID] {
				t.Errorf("%s: duplicate panel id %d", file, p.ID)
			}
			ids[p.ID] = true
			if p.Type == "row" { // a row only groups panels; it has no query or unit
				continue
			}
			where := fmt.Sprintf("%s panel %q", file, p.Title)
			if p.Description == "" {
				t.Errorf("%s: no description", where)
			}
			if p.FieldConfig.Defaults.Unit == "" {
				t.Errorf("%s: no unit", where)
			}
			if p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: datasource %q, want ${datasource}", where, p.Datasource.UID)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no query", where)
			}
			for i, tg := range p.Targets {
				if tg.Datasource.UID != "${datasource}" {
					t.Errorf("%s target %d: datasource %q, want ${datasource}", where, i, tg.Datasource.UID)
				}
				if !strings.Contains(tg.Expr, "$__rate_interval") {
					t.Errorf("%s target %d: %q does not use $__rate_interval", where, i, tg.Expr)
				}
				ex, err := parse(expression{expr: tg.Expr, grafana: true})
				if err != nil {
					t.Errorf("%s target %d: %v", where, i, err)
					continue
				}
				parser.Inspect(ex, func(n parser.Node, _ []parser.Node) error {
					if ms, ok := n.(*parser.MatrixSelector); ok && ms.Range != time.Duration(want) {
						t.Errorf("%s target %d: range [%s] is hard-coded; use [$__rate_interval]", where, i, ms.Range)
					}
					return nil
				})
			}
		}
	}
}

// family is a metric family flexgw exposes: its type and label names.
type family struct {
	typ    dto.MetricType
	labels []string
}

// otherFamilies are the metric families that packages other than
// telemetry/metrics register on the same /metrics: their collectors need a
// kernel, Fluent Bit or Redis to produce samples, so they are listed here
// with their labels. Keep this list equal to the descriptors in
// logpipe/metrics.go, ebpf/collector.go, sharedstore/sharedstore.go,
// envoy/xds/metrics.go and envoy/stats/stats.go (a scrape of the real
// binary with those collectors live replaces it).
var otherFamilies = map[string]family{
	"flexgw_logpipe_records_in_total":        {dto.MetricType_COUNTER, []string{"exporter"}},
	"flexgw_logpipe_sent_total":              {dto.MetricType_COUNTER, []string{"exporter"}},
	"flexgw_logpipe_retried_total":           {dto.MetricType_COUNTER, []string{"exporter"}},
	"flexgw_logpipe_dropped_total":           {dto.MetricType_COUNTER, []string{"exporter"}},
	"flexgw_logpipe_dead_lettered_total":     {dto.MetricType_COUNTER, []string{"exporter"}},
	"flexgw_logpipe_queue_bytes":             {dto.MetricType_GAUGE, []string{"exporter"}},
	"flexgw_logpipe_queue_depth":             {dto.MetricType_GAUGE, []string{"exporter"}},
	"flexgw_tcp_connect_duration_seconds":    {dto.MetricType_HISTOGRAM, []string{"service", "endpoint"}},
	"flexgw_tcp_handshake_duration_seconds":  {dto.MetricType_HISTOGRAM, []string{"listener"}},
	"flexgw_tcp_rtt_seconds":                 {dto.MetricType_HISTOGRAM, []string{"direction", "service"}},
	"flexgw_tcp_connect_failures_total":      {dto.MetricType_COUNTER, []string{"service", "endpoint"}},
	"flexgw_tcp_connection_duration_seconds": {dto.MetricType_HISTOGRAM, []string{"direction"}},
	"flexgw_shared_storage_errors_total":     {dto.MetricType_COUNTER, []string{"op"}},
	"flexgw_xds_pushes_total":                {dto.MetricType_COUNTER, []string{"result"}},
	"flexgw_xds_nacks_total":                 {dto.MetricType_COUNTER, []string{"type"}},
	"flexgw_envoy_stats_up":                  {dto.MetricType_GAUGE, nil},
}

// targetLabels are added by Prometheus to every scraped series.
var targetLabels = []string{"job", "instance"}

// scrapeFlexgw runs telemetry/metrics as flexgw wires it, drives traffic
// through its data-plane hooks, scrapes /metrics over a real HTTP socket
// and returns the families it exposes.
func scrapeFlexgw(t *testing.T) map[string]family {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, metrics.Options{})
	reg.MustRegister(metrics.BuildInfo("v1.0.0", "abc1234"))
	h := m.Hooks()
	h.Conn("http_0.0.0.0_8081", 1)
	h.EndpointHealth("default/orders-svc", "10.0.0.1:80", true)
	for i, code := range []int{200, 404, 503, 0} {
		_, done := h.Request(context.Background(), observe.RequestInfo{Listener: "http_0.0.0.0_8081", API: "orders", Route: "orders-0", Method: "GET"})
		done(&accesslog.Record{ResponseCode: code, UpstreamHost: "10.0.0.1:80", Path: fmt.Sprintf("/o/%d", i), Policy: "rate-limiting-flex", PolicyOutcome: "allow"},
			observe.Timings{Total: 12 * time.Millisecond, Upstream: 9 * time.Millisecond, Service: "default/orders-svc", RequestBytes: 300, ResponseBytes: 2048})
	}
	m.ReloadResult(true, 3, time.Now())
	m.ReloadResult(false, 0, time.Now())

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]family{}
	for name, f := range fams {
		set := map[string]bool{}
		for _, s := range f.GetMetric() {
			for _, lp := range s.GetLabel() {
				set[lp.GetName()] = true
			}
		}
		var labels []string
		for l := range set {
			labels = append(labels, l)
		}
		sort.Strings(labels)
		out[name] = family{f.GetType(), labels}
	}
	return out
}

// seriesNames expands families into the series names PromQL can select,
// with the labels each carries.
func seriesNames(fams map[string]family) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	add := func(name string, labels []string, extra ...string) {
		set := map[string]bool{}
		for _, l := range append(append(append([]string{}, labels...), extra...), targetLabels...) {
			set[l] = true
		}
		out[name] = set
	}
	for name, f := range fams {
		switch f.typ {
		case dto.MetricType_HISTOGRAM:
			add(name+"_bucket", f.labels, "le")
			add(name+"_sum", f.labels)
			add(name+"_count", f.labels)
		case dto.MetricType_SUMMARY:
			add(name, f.labels, "quantile")
			add(name+"_sum", f.labels)
			add(name+"_count", f.labels)
		default:
			add(name, f.labels)
		}
	}
	return out
}

// TestQueriesUseExposedMetrics parses every PromQL expression of the
// dashboards and alert rules and checks that each metric (and each label
// it filters or groups on) is one flexgw exposes, so the dashboards
// cannot drift from the code.
func TestQueriesUseExposedMetrics(t *testing.T) {
	fams := scrapeFlexgw(t)
	for name, f := range otherFamilies {
		if _, dup := fams[name]; dup {
			t.Errorf("%s is exposed by telemetry/metrics and listed in otherFamilies", name)
		}
		fams[name] = f
	}
	series := seriesNames(fams)
	ruleExprs, recorded := ruleExpressions(t)
	for _, r := range recorded {
		series[r] = map[string]bool{"api": true}
	}
	used := map[string]bool{}
	for _, e := range append(dashboardExpressions(t), ruleExprs...) {
		ex, err := parse(e)
		if err != nil {
			t.Errorf("%s: %q: %v", e.where, e.expr, err)
			continue
		}
		grouped := map[string]bool{}
		parser.Inspect(ex, func(n parser.Node, _ []parser.Node) error {
			if a, ok := n.(*parser.AggregateExpr); ok && !a.Without {
				for _, l := range a.Grouping {
					grouped[l] = true
				}
			}
			return nil
		})
		var names []string
		parser.Inspect(ex, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			labels, known := series[vs.Name]
			if !known {
				t.Errorf("%s: metric %s is not exposed by flexgw", e.where, vs.Name)
				return nil
			}
			names = append(names, vs.Name)
			used[vs.Name] = true
			for _, m := range vs.LabelMatchers {
				if m.Name != model.MetricNameLabel && !labels[m.Name] {
					t.Errorf("%s: %s has no label %q", e.where, vs.Name, m.Name)
				}
			}
			return nil
		})
		// A grouping label must exist on at least one selected metric.
		for l := range grouped {
			found := false
			for _, n := range names {
				if series[n][l] {
					found = true
				}
			}
			if !found && len(names) > 0 {
				t.Errorf("%s: groups by %q, which none of %v has", e.where, l, names)
			}
		}
	}
	// Every flexgw_* family has a home on some dashboard or rule.
	for name, f := range fams {
		if !strings.HasPrefix(name, "flexgw_") {
			continue
		}
		shown := used[name]
		if f.typ == dto.MetricType_HISTOGRAM {
			shown = used[name+"_bucket"] || used[name+"_count"]
		}
		if !shown {
			t.Errorf("%s is exposed but no dashboard or rule shows it", name)
		}
	}
}

// TestPromtoolRules runs promtool's checker and the rule unit tests.
func TestPromtoolRules(t *testing.T) {
	for _, args := range [][]string{
		{"check", "rules", "alerts.yaml"},
		{"test", "rules", "alerts_test.yaml"},
	} {
		out, err := exec.Command("promtool", args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
