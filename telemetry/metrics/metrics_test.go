package metrics_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/trace"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/observe"
	"github.com/flexgw/flexgw/telemetry/internal/hookproxy"
	"github.com/flexgw/flexgw/telemetry/metrics"
)

// gateway is the metrics package wired to the stand-in data plane, with
// the registry served over a real admin socket.
type gateway struct {
	m        *metrics.Metrics
	proxyURL string
	adminURL string
}

func startGateway(t *testing.T, upstream http.Handler, decide func(*http.Request) hookproxy.Decision) *gateway {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, metrics.Options{})
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	p := &hookproxy.Proxy{
		Hooks: m.Hooks(), Upstream: u, Listener: "http_127.0.0.1_8081",
		API: "orders", Route: "orders-0", Service: "default/orders-svc", Decide: decide,
	}
	proxyURL, stop, err := p.Serve()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	admin := httptest.NewServer(m.Handler())
	t.Cleanup(admin.Close)
	return &gateway{m: m, proxyURL: proxyURL, adminURL: admin.URL}
}

func upstreamByPath() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/fail"):
			w.WriteHeader(http.StatusInternalServerError)
		case strings.HasPrefix(r.URL.Path, "/missing"):
			w.WriteHeader(http.StatusNotFound)
		default:
			_, _ = io.WriteString(w, "hello")
		}
	})
}

func do(t *testing.T, c *http.Client, method, u string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// scrape fetches /metrics over HTTP in the Prometheus text format.
func scrape(t *testing.T, adminURL string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing scrape: %v", err)
	}
	return fams
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// find returns the sample of family name whose labels include want.
func find(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("scrape has no %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		got := labelsOf(m)
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("scrape has no %s%v", name, want)
	return nil
}

func seriesCount(fams map[string]*dto.MetricFamily, prefix string) int {
	n := 0
	for name, f := range fams {
		if strings.HasPrefix(name, prefix) {
			n += len(f.GetMetric())
		}
	}
	return n
}

func TestMetricsAfterTraffic(t *testing.T) {
	deny := func(r *http.Request) hookproxy.Decision {
		if r.Header.Get("X-Deny") != "" {
			return hookproxy.Decision{Policy: "rate-limiting-flex", Outcome: "deny", Status: http.StatusTooManyRequests}
		}
		return hookproxy.Decision{Policy: "rate-limiting-flex", Outcome: "allow"}
	}
	g := startGateway(t, upstreamByPath(), deny)
	// One connection at most, so the connection gauge has one exact value.
	c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	for i := 0; i < 3; i++ {
		do(t, c, http.MethodGet, g.proxyURL+"/ok")
	}
	do(t, c, http.MethodPost, g.proxyURL+"/fail")
	do(t, c, "BREW", g.proxyURL+"/ok") // RFC 2324: an unknown method
	do(t, c, http.MethodGet, g.proxyURL+"/missing")
	req, _ := http.NewRequest(http.MethodGet, g.proxyURL+"/ok", nil)
	req.Header.Set("X-Deny", "1")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	g.m.ReloadResult(true, 7, time.Unix(1700000000, 0))
	g.m.ReloadResult(false, 0, time.Now())
	g.m.Hooks().EndpointHealth("default/orders-svc", "10.0.0.1:80", true)
	g.m.Hooks().EndpointHealth("default/orders-svc", "10.0.0.2:80", false)

	fams := scrape(t, g.adminURL)
	counter := func(name string, l map[string]string) float64 {
		return find(t, fams, name, l).GetCounter().GetValue()
	}
	base := map[string]string{"api": "orders", "route": "orders-0"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		labels map[string]string
		want   float64
	}{
		{with("method", "GET", "code_class", "2xx"), 3},
		{with("method", "POST", "code_class", "5xx"), 1},
		{with("method", "OTHER", "code_class", "2xx"), 1},
		{with("method", "GET", "code_class", "4xx"), 2},
	} {
		if got := counter("flexgw_requests_total", tc.labels); got != tc.want {
			t.Errorf("flexgw_requests_total%v = %v, want %v", tc.labels, got, tc.want)
		}
	}
	if got := find(t, fams, "flexgw_request_duration_seconds", base).GetHistogram().GetSampleCount(); got != 7 {
		t.Errorf("request duration count = %d, want 7", got)
	}
	// The denied request never reached the upstream.
	up := find(t, fams, "flexgw_upstream_duration_seconds", with("service", "default/orders-svc")).GetHistogram()
	if up.GetSampleCount() != 6 {
		t.Errorf("upstream duration count = %d, want 6", up.GetSampleCount())
	}
	ov := find(t, fams, "flexgw_gateway_overhead_seconds", map[string]string{"api": "orders"}).GetHistogram()
	if ov.GetSampleCount() != 7 || ov.GetSampleSum() < 0 {
		t.Errorf("overhead count=%d sum=%v, want 7 and >= 0", ov.GetSampleCount(), ov.GetSampleSum())
	}
	if got := find(t, fams, "flexgw_response_size_bytes", map[string]string{"api": "orders"}).GetHistogram().GetSampleSum(); got != 5*4 {
		t.Errorf("response bytes sum = %v, want 20 (four 'hello' bodies)", got)
	}
	if got := counter("flexgw_policy_decisions_total", map[string]string{"api": "orders", "policy": "rate-limiting-flex", "outcome": "deny"}); got != 1 {
		t.Errorf("policy deny = %v, want 1", got)
	}
	if got := counter("flexgw_policy_decisions_total", map[string]string{"api": "orders", "policy": "rate-limiting-flex", "outcome": "allow"}); got != 6 {
		t.Errorf("policy allow = %v, want 6", got)
	}
	if got := counter("flexgw_config_reloads_total", map[string]string{"result": "success"}); got != 1 {
		t.Errorf("reload success = %v", got)
	}
	if got := counter("flexgw_config_reloads_total", map[string]string{"result": "failure"}); got != 1 {
		t.Errorf("reload failure = %v", got)
	}
	if got := find(t, fams, "flexgw_config_last_reload_success_timestamp_seconds", nil).GetGauge().GetValue(); got != 1700000000 {
		t.Errorf("last reload timestamp = %v", got)
	}
	if got := find(t, fams, "flexgw_snapshot_info", map[string]string{"version": "7"}).GetGauge().GetValue(); got != 1 {
		t.Errorf("snapshot_info = %v", got)
	}
	if got := find(t, fams, "flexgw_upstream_endpoint_healthy", map[string]string{"endpoint": "10.0.0.2:80"}).GetGauge().GetValue(); got != 0 {
		t.Errorf("unhealthy endpoint gauge = %v", got)
	}
	if got := find(t, fams, "flexgw_active_connections", map[string]string{"listener": "http_127.0.0.1_8081"}).GetGauge().GetValue(); got != 1 {
		t.Errorf("active connections with one keep-alive client = %v, want 1", got)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("scrape lacks runtime/process metric %s", name)
		}
	}

	// Closing the client's connection brings the gauge back to zero.
	c.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams = scrape(t, g.adminURL)
		v := find(t, fams, "flexgw_active_connections", map[string]string{"listener": "http_127.0.0.1_8081"}).GetGauge().GetValue()
		if v == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("active connections = %v after the client closed, want 0", v)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A new version replaces the snapshot_info series.
	g.m.ReloadResult(true, 8, time.Now())
	fams = scrape(t, g.adminURL)
	if n := len(fams["flexgw_snapshot_info"].GetMetric()); n != 1 {
		t.Errorf("snapshot_info has %d series, want 1", n)
	}
	find(t, fams, "flexgw_snapshot_info", map[string]string{"version": "8"})
}

// TestDistinctPathsCreateNoSeries sends 10,000 requests with distinct paths
// (and query strings, and odd methods) and proves the series count does
// not move: labels come from config names only.
func TestDistinctPathsCreateNoSeries(t *testing.T) {
	g := startGateway(t, upstreamByPath(), nil)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	// Warm up every label combination the loop below uses.
	do(t, c, http.MethodGet, g.proxyURL+"/warm")
	do(t, c, "PROPFIND", g.proxyURL+"/warm")
	before := seriesCount(scrape(t, g.adminURL), "flexgw_")

	const n, workers = 10000, 4
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				method := http.MethodGet
				if i%2 == 1 {
					method = fmt.Sprintf("X-METHOD-%d", i) // invented methods are OTHER
				}
				req, _ := http.NewRequest(method, fmt.Sprintf("%s/items/%d/detail-%x?q=%d", g.proxyURL, i, i*7919, i), nil)
				resp, err := c.Do(req)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fams := scrape(t, g.adminURL)
	if after := seriesCount(fams, "flexgw_"); after != before {
		t.Fatalf("flexgw_* series went from %d to %d after %d distinct paths", before, after, n)
	}
	total := 0.0
	for _, m := range fams["flexgw_requests_total"].GetMetric() {
		total += m.GetCounter().GetValue()
	}
	if total != n+2 {
		t.Fatalf("requests counted = %v, want %d", total, n+2)
	}
}

// TestExemplarsInOpenMetrics checks the trace id of a sampled request is an
// exemplar on the latency histograms when the scraper asks for OpenMetrics,
// and that the classic text format stays exemplar-free.
func TestExemplarsInOpenMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, metrics.Options{NoRuntimeCollectors: true})
	admin := httptest.NewServer(m.Handler())
	defer admin.Close()

	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sampled := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
	unsampledTID, _ := trace.TraceIDFromHex("11111111111111111111111111111111")
	unsampled := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: unsampledTID, SpanID: sid,
	}))
	h := m.Hooks()
	for _, ctx := range []context.Context{sampled, unsampled} {
		_, done := h.Request(ctx, observe.RequestInfo{API: "orders", Route: "r0", Method: "GET"})
		done(&accesslog.Record{ResponseCode: 200, UpstreamHost: "10.0.0.1:80"},
			observe.Timings{Total: 30 * time.Millisecond, Upstream: 20 * time.Millisecond, Service: "default/svc"})
	}

	get := func(accept string) string {
		req, _ := http.NewRequest(http.MethodGet, admin.URL, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	om := get("application/openmetrics-text; version=1.0.0; charset=utf-8")
	for _, fam := range []string{"flexgw_request_duration_seconds_bucket", "flexgw_upstream_duration_seconds_bucket", "flexgw_gateway_overhead_seconds_bucket"} {
		found := false
		for _, line := range strings.Split(om, "\n") {
			if strings.HasPrefix(line, fam) && strings.Contains(line, `# {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"}`) {
				found = true
			}
		}
		if !found {
			t.Errorf("OpenMetrics scrape has no trace_id exemplar on %s:\n%s", fam, om)
		}
	}
	if strings.Contains(om, unsampledTID.String()) {
		t.Errorf("unsampled trace id %s exported as an exemplar", unsampledTID)
	}
	if !strings.HasSuffix(strings.TrimSpace(om), "# EOF") {
		t.Errorf("OpenMetrics scrape does not end with # EOF")
	}
	if text := get(""); strings.Contains(text, "trace_id") {
		t.Errorf("Prometheus text scrape carries exemplars")
	}
}

// TestPromtoolCheckMetrics lints a real scrape with promtool.
func TestPromtoolCheckMetrics(t *testing.T) {
	g := startGateway(t, upstreamByPath(), func(*http.Request) hookproxy.Decision {
		return hookproxy.Decision{Policy: "jwt-validation-flex", Outcome: "allow"}
	})
	do(t, http.DefaultClient, http.MethodGet, g.proxyURL+"/ok")
	g.m.ReloadResult(true, 1, time.Now())
	g.m.Hooks().EndpointHealth("default/orders-svc", "127.0.0.1:80", true)
	resp, err := http.Get(g.adminURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestPrune drops the series of an API removed from the config and keeps
// the others.
func TestPrune(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, metrics.Options{NoRuntimeCollectors: true})
	admin := httptest.NewServer(m.Handler())
	defer admin.Close()
	h := m.Hooks()
	for _, api := range []string{"keep", "gone"} {
		_, done := h.Request(context.Background(), observe.RequestInfo{API: api, Route: "r", Method: "GET"})
		done(&accesslog.Record{ResponseCode: 200, Policy: "cors", PolicyOutcome: "allow"}, observe.Timings{Total: time.Millisecond})
	}
	h.EndpointHealth("ns/svc", "10.0.0.1:80", true)
	h.EndpointHealth("ns/old", "10.0.0.9:80", true)
	snap := &ir.Snapshot{
		Version:   2,
		Listeners: []*ir.Listener{{Name: "l", APIs: []*ir.API{{Name: "keep", Namespace: "ns", Routes: []*ir.Route{{Name: "r"}}}}}},
		Services:  []*ir.Service{{Name: "svc", Namespace: "ns", Endpoints: []ir.Endpoint{{Host: "10.0.0.1", Port: 80}}}},
	}
	m.Prune(snap)
	fams := scrape(t, admin.URL)
	for name, f := range fams {
		for _, s := range f.GetMetric() {
			l := labelsOf(s)
			if l["api"] == "gone" || l["service"] == "ns/old" {
				t.Errorf("%s%v survived the prune", name, l)
			}
		}
	}
	find(t, fams, "flexgw_requests_total", map[string]string{"api": "keep"})
	find(t, fams, "flexgw_upstream_endpoint_healthy", map[string]string{"service": "ns/svc"})

	// A pruned API that comes back is counted again from zero.
	_, done := h.Request(context.Background(), observe.RequestInfo{API: "gone", Route: "r", Method: "GET"})
	done(&accesslog.Record{ResponseCode: 200}, observe.Timings{Total: time.Millisecond})
	fams = scrape(t, admin.URL)
	if got := find(t, fams, "flexgw_requests_total", map[string]string{"api": "gone"}).GetCounter().GetValue(); got != 1 {
		t.Errorf("re-added api counted %v, want 1", got)
	}
}
