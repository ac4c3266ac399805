package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// emRequest is what the stand-in Envoy is told it served (its POST
// /test/requests hook): it writes one access-log line per request, to the
// path and in the json_format of the access log the agent pushed over LDS.
type emRequest struct {
	Method          string `json:"method"`
	Path            string `json:"path"`
	Code            int    `json:"code"`
	Flags           string `json:"flags,omitempty"`
	DurationMs      int64  `json:"duration_ms"`
	UpstreamMs      *int64 `json:"upstream_ms,omitempty"`
	BytesReceived   int64  `json:"bytes_received"`
	BytesSent       int64  `json:"bytes_sent"`
	UpstreamHost    string `json:"upstream_host,omitempty"`
	UpstreamCluster string `json:"upstream_cluster,omitempty"`
	API             string `json:"api,omitempty"`
	Route           string `json:"route,omitempty"`
	TraceID         string `json:"trace_id,omitempty"`
	Policy          string `json:"policy,omitempty"`
	PolicyOutcome   string `json:"policy_outcome,omitempty"`
	Count           int    `json:"count,omitempty"`
}

func emMs(v int64) *int64 { return &v }

// In Envoy mode the request metrics come from Envoy's access log, counted
// exactly as the built-in data plane counts them: the real binary with
// --dataplane envoy against the stand-in Envoy, which writes access-log
// lines in the json_format flexgw pushed to it; /metrics must then carry
// the real methods and code classes, the request/upstream/overhead
// histograms with the record's trace id as exemplar, the policy denial,
// and no method="ANY" series from Envoy's stats.
func TestEnvoyModeRequestMetricsFromAccessLog(t *testing.T) {
	bin := testutil.FakeEnvoyT(t)
	t.Setenv("FAKE_ENVOY_ADS", "1")
	envoyAdmin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	g := startGateway(t, writeConfig(t, map[string]string{"api.yaml": inlineAPI("em", freePort(t), "", "http://127.0.0.1:9")}),
		"--dataplane", "envoy", "--envoy-path", bin,
		"--envoy-admin", envoyAdmin,
		"--xds-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)))

	const (
		api     = "default/em"
		service = "default/em/backend"
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	)
	serve := func(reqs ...emRequest) (int, string) {
		b, _ := json.Marshal(reqs)
		resp, err := http.Post("http://"+envoyAdmin+"/test/requests", "application/json", bytes.NewReader(b))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	// Until the agent follows the file, lines written are not counted (it
	// starts at the end of the log): repeat one OPTIONS request until it
	// shows, then send the requests under test.
	eventually(t, 60*time.Second, func() string {
		if code, body := serve(emRequest{Method: "OPTIONS", Path: "/api/warmup", Code: 204, DurationMs: 1, API: api, Route: "backend-1"}); code != http.StatusOK {
			return fmt.Sprintf("stand-in Envoy has not written access-log lines: %d %s", code, body)
		}
		fams, _, err := emScrape(g)
		if err != nil {
			return err.Error()
		}
		if emValue(fams, "flexgw_requests_total", map[string]string{"api": api, "method": "OPTIONS"}) == 0 {
			return "the warm-up request is not counted yet"
		}
		return ""
	})

	if code, body := serve(
		emRequest{Method: "GET", Path: "/api/orders", Code: 200, DurationMs: 12, UpstreamMs: emMs(9), BytesSent: 100,
			UpstreamHost: "127.0.0.1:9", UpstreamCluster: service, API: api, Route: "backend-0", Count: 3},
		emRequest{Method: "GET", Path: "/api/orders/1", Code: 200, DurationMs: 12, UpstreamMs: emMs(9), BytesSent: 100,
			UpstreamHost: "127.0.0.1:9", UpstreamCluster: service, API: api, Route: "backend-0", TraceID: traceID},
		emRequest{Method: "POST", Path: "/api/orders", Code: 503, DurationMs: 50, UpstreamMs: emMs(40), BytesReceived: 300,
			UpstreamHost: "127.0.0.1:9", UpstreamCluster: service, API: api, Route: "backend-0", Count: 2},
		emRequest{Method: "PUT", Path: "/other", Code: 429, Flags: "RL", DurationMs: 1, UpstreamCluster: service,
			API: api, Route: "backend-1", Policy: "rate-limiting-flex", PolicyOutcome: "denied"},
		emRequest{Method: "DELETE", Path: "/nowhere", Code: 404, Flags: "NR", DurationMs: 0},
	); code != http.StatusOK {
		t.Fatalf("stand-in Envoy: %d %s", code, body)
	}

	eventually(t, 30*time.Second, func() string {
		fams, _, err := emScrape(g)
		if err != nil {
			return err.Error()
		}
		if got := emValue(fams, "flexgw_request_duration_seconds", map[string]string{"api": api, "route": "backend-0"}); got != 6 {
			return fmt.Sprintf("flexgw_request_duration_seconds{route=backend-0} count = %v, want 6", got)
		}
		if got := emValue(fams, "flexgw_requests_total", map[string]string{"api": "unmatched"}); got != 1 {
			return fmt.Sprintf("unmatched requests = %v, want 1", got)
		}
		return ""
	})

	fams, text, err := emScrape(g)
	if err != nil {
		t.Fatal(err)
	}
	// Every warm-up line precedes the batch in the file, so all of them
	// are counted by now; there may be more than one.
	warmups := emValue(fams, "flexgw_requests_total", map[string]string{"api": api, "method": "OPTIONS"})
	if warmups < 1 {
		t.Errorf("warm-up requests = %v", warmups)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"flexgw_requests_total", map[string]string{"api": api, "route": "backend-0", "method": "GET", "code_class": "2xx"}, 4},
		{"flexgw_requests_total", map[string]string{"api": api, "route": "backend-0", "method": "POST", "code_class": "5xx"}, 2},
		{"flexgw_requests_total", map[string]string{"api": api, "route": "backend-1", "method": "PUT", "code_class": "4xx"}, 1},
		{"flexgw_requests_total", map[string]string{"api": "unmatched", "route": "unmatched", "method": "DELETE", "code_class": "4xx"}, 1},
		// Histogram values are sample counts.
		{"flexgw_request_duration_seconds", map[string]string{"api": api, "route": "backend-0"}, 6},
		{"flexgw_upstream_duration_seconds", map[string]string{"api": api, "route": "backend-0", "service": service}, 6},
		{"flexgw_gateway_overhead_seconds", map[string]string{"api": api}, 7 + warmups},
		{"flexgw_policy_decisions_total", map[string]string{"api": api, "policy": "rate-limiting-flex", "outcome": "denied"}, 1},
		{"flexgw_envoy_stats_up", nil, 1},
	} {
		if got := emValue(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Durations are the access log's milliseconds, in seconds.
	if sum := emSum(fams, "flexgw_request_duration_seconds", map[string]string{"api": api, "route": "backend-0"}); math.Abs(sum-(4*0.012+2*0.050)) > 1e-9 {
		t.Errorf("request duration sum = %v, want 0.148", sum)
	}
	if sum := emSum(fams, "flexgw_upstream_duration_seconds", map[string]string{"route": "backend-0"}); math.Abs(sum-(4*0.009+2*0.040)) > 1e-9 {
		t.Errorf("upstream duration sum = %v, want 0.116", sum)
	}
	// The 429 never reached an upstream: no upstream sample for backend-1.
	if got := emValue(fams, "flexgw_upstream_duration_seconds", map[string]string{"route": "backend-1"}); got != 0 {
		t.Errorf("upstream samples for the denied route = %v, want 0", got)
	}
	if strings.Contains(text, `method="ANY"`) {
		t.Errorf("a method=\"ANY\" series from Envoy's stats is still exposed")
	}

	// OpenMetrics carries the record's trace id as an exemplar.
	req, _ := http.NewRequest(http.MethodGet, g.adminURL("/metrics"), nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0; charset=utf-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	om, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	found := false
	for _, line := range strings.Split(string(om), "\n") {
		if strings.HasPrefix(line, "flexgw_request_duration_seconds_bucket{") && strings.Contains(line, `# {trace_id="`+traceID+`"}`) {
			found = true
		}
	}
	if !found {
		t.Errorf("no trace_id exemplar on flexgw_request_duration_seconds in the OpenMetrics scrape")
	}

	// The scrape passes Prometheus's own linter.
	lint := exec.Command("promtool", "check", "metrics")
	lint.Stdin = strings.NewReader(text)
	if out, err := lint.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// emScrape fetches /metrics in the Prometheus text format. A registry
// that collected one series twice answers 500, which fails here.
func emScrape(g *gateway) (map[string]*dto.MetricFamily, string, error) {
	resp, err := http.Get(g.adminURL("/metrics"))
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET /metrics: %s\n%s", resp.Status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, "", fmt.Errorf("parsing /metrics: %w", err)
	}
	return fams, string(body), nil
}

// matching returns the samples of family name whose labels include want.
func emMatching(fams map[string]*dto.MetricFamily, name string, want map[string]string) []*dto.Metric {
	var out []*dto.Metric
next:
	for _, m := range fams[name].GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// emValue sums the matching samples: counter and gauge values,
// histogram sample counts.
func emValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	v := 0.0
	for _, m := range emMatching(fams, name, want) {
		v += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
	}
	return v
}

func emSum(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	v := 0.0
	for _, m := range emMatching(fams, name, want) {
		v += m.GetHistogram().GetSampleSum()
	}
	return v
}
