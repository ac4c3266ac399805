package stats

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/envoy/translate"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/telemetry/metrics"
)

// translated gives the stats tables of a real translation, so the test
// proves the translator's naming and this mapping agree.
func translated(t *testing.T) *translate.Result {
	t.Helper()
	svc := func(name string) *ir.Service {
		return &ir.Service{Name: name, Namespace: "default", Protocol: ir.HTTP, Endpoints: []ir.Endpoint{{Host: "10.0.0.1", Port: 80}}}
	}
	api := &ir.API{Name: "orders-api", Namespace: "default", BasePath: "/api",
		Routes: []*ir.Route{
			{Name: "create", Destinations: []ir.Destination{{Service: "default/orders", Weight: 80}, {Service: "default/canary", Weight: 20}}},
			{Name: "read", Destinations: []ir.Destination{{Service: "default/orders", Weight: 100}}},
		}}
	res, err := translate.Translate(&ir.Snapshot{
		Listeners: []*ir.Listener{{Name: "http_0.0.0.0_8081", Protocol: ir.HTTP, Host: "0.0.0.0", Port: 8081, APIs: []*ir.API{api}}},
		Services:  []*ir.Service{svc("orders"), svc("canary")},
	}, translate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// envoyAdmin is a stand-in for Envoy's admin endpoint serving the
// recorded-format sample.
func envoyAdmin(t *testing.T) *httptest.Server {
	t.Helper()
	body, err := os.ReadFile("testdata/stats_prometheus.txt")
	if err != nil {
		t.Fatal(err)
	}
	clusters, err := os.ReadFile("testdata/clusters.txt")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stats/prometheus":
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			w.Write(body)
		case "/clusters":
			w.Write(clusters)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func series(mf *dto.MetricFamily, labels map[string]string) *dto.Metric {
	for _, m := range mf.GetMetric() {
		match := true
		for k, v := range labels {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			match = match && found
		}
		if match {
			return m
		}
	}
	return nil
}

func TestCollectorMapsEnvoyStats(t *testing.T) {
	res := translated(t)
	admin := envoyAdmin(t)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(Options{AdminAddr: admin.Listener.Addr().String(), Names: func() *translate.Result { return res }, Logger: slog.New(slog.DiscardHandler)}))
	fams := gather(t, reg)

	// Per-request series come from the access log (ObserveRecord), never
	// from Envoy's per-route stats, though the sample has them.
	for _, name := range []string{"flexgw_requests_total", "flexgw_upstream_duration_seconds", "flexgw_request_duration_seconds"} {
		if fams[name] != nil {
			t.Errorf("%s mapped from Envoy's stats: %v", name, fams[name])
		}
	}

	conns := fams["flexgw_active_connections"]
	if m := series(conns, map[string]string{"listener": "http_0.0.0.0_8081"}); m.GetGauge().GetValue() != 12 || len(conns.GetMetric()) != 1 {
		t.Errorf("active connections = %v", conns)
	}
	if v := fams["flexgw_envoy_stats_up"].GetMetric()[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("up = %v", v)
	}

	healthy := fams["flexgw_upstream_endpoint_healthy"]
	for ep, want := range map[string]float64{"10.0.0.1:80": 1, "10.0.0.2:80": 0, "10.0.0.3:80": 0} {
		if m := series(healthy, map[string]string{"service": "default/orders", "endpoint": ep}); m == nil || m.GetGauge().GetValue() != want {
			t.Errorf("healthy %s = %v, want %v", ep, m.GetGauge().GetValue(), want)
		}
	}
	if n := len(healthy.GetMetric()); n != 4 {
		t.Errorf("%d endpoint series, want 4 (the ADS cluster and unknown clusters left out)", n)
	}
}

func TestCollectorEnvoyDown(t *testing.T) {
	admin := envoyAdmin(t)
	addr := admin.Listener.Addr().String()
	admin.Close()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(Options{AdminAddr: addr, Logger: slog.New(slog.DiscardHandler)}))
	fams := gather(t, reg)
	if v := fams["flexgw_envoy_stats_up"].GetMetric()[0].GetGauge().GetValue(); v != 0 {
		t.Errorf("up = %v with Envoy down", v)
	}
}

// TestSameRegistryAsBuiltinMetrics: the agent serves one registry holding
// telemetry/metrics (fed by Envoy's access log) and this collector. Every
// series must have exactly one source and agree with the built-in data
// plane's metric definitions (help and type), or the whole scrape fails.
func TestSameRegistryAsBuiltinMetrics(t *testing.T) {
	res := translated(t)
	admin := envoyAdmin(t)
	reg := prometheus.NewPedanticRegistry()
	m := metrics.New(reg, metrics.Options{NoRuntimeCollectors: true, Logger: slog.New(slog.DiscardHandler)})
	reg.MustRegister(NewCollector(Options{AdminAddr: admin.Listener.Addr().String(), Names: func() *translate.Result { return res }, Logger: slog.New(slog.DiscardHandler)}))
	// The requests Envoy's stats sample counts, as its access log has them.
	for _, rec := range []accesslog.Record{
		{APIInstance: "default/orders-api", Route: "create", Method: "POST", ResponseCode: 201, Duration: 12 * time.Millisecond,
			UpstreamServiceTime: 9 * time.Millisecond, UpstreamHost: "10.0.0.1:80", UpstreamCluster: "default/orders"},
		{APIInstance: "default/orders-api", Route: "create", Method: "POST", ResponseCode: 503, Duration: 30 * time.Millisecond,
			UpstreamServiceTime: 29 * time.Millisecond, UpstreamHost: "10.0.0.2:80", UpstreamCluster: "default/canary"},
		{APIInstance: "default/orders-api", Route: "read", Method: "GET", ResponseCode: 200, Duration: time.Millisecond,
			UpstreamHost: "10.0.0.1:80", UpstreamCluster: "default/orders"},
	} {
		m.ObserveRecord(&rec)
	}
	fams := gather(t, reg)
	req := fams["flexgw_requests_total"]
	if n := len(req.GetMetric()); n != 3 {
		t.Errorf("%d request series, want 3 (one per method and class)", n)
	}
	for _, mm := range req.GetMetric() {
		for _, lp := range mm.GetLabel() {
			if lp.GetName() == "method" && lp.GetValue() == "ANY" {
				t.Errorf("a method=\"ANY\" series from Envoy's stats: %v", mm)
			}
		}
	}
	if m := series(req, map[string]string{"api": "default/orders-api", "route": "create", "method": "POST", "code_class": "5xx"}); m.GetCounter().GetValue() != 1 {
		t.Errorf("create POST 5xx = %v, want 1", m.GetCounter().GetValue())
	}
	for _, name := range []string{"flexgw_request_duration_seconds", "flexgw_upstream_duration_seconds", "flexgw_gateway_overhead_seconds",
		"flexgw_active_connections", "flexgw_upstream_endpoint_healthy", "flexgw_envoy_stats_up"} {
		if fams[name] == nil {
			t.Errorf("%s missing from the shared registry", name)
		}
	}
	if h := series(fams["flexgw_upstream_duration_seconds"], map[string]string{"route": "create", "service": "default/canary"}).GetHistogram(); h.GetSampleCount() != 1 {
		t.Errorf("upstream histogram of the canary = %v, want one sample", h)
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	_, err := Parse(stringsReader("# ok\nfoo{a=\"b\"} 1\nbar{a=\"b} 2\n"))
	if err == nil || !contains(err.Error(), "line 3") {
		t.Errorf("err = %v", err)
	}
}
