package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/internal/otlpstandin"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/observe"
	"github.com/flexgw/flexgw/telemetry"
	"github.com/flexgw/flexgw/telemetry/internal/hookproxy"
	"github.com/flexgw/flexgw/telemetry/metrics"
	"github.com/flexgw/flexgw/telemetry/tracing"
)

// recorder is a hook set that logs the order of calls.
func recorder(name string, log *[]string) observe.Hooks {
	type key struct{}
	return observe.Hooks{
		Request: func(ctx context.Context, info observe.RequestInfo) (context.Context, observe.RequestDone) {
			*log = append(*log, name+".request saw "+func() string { v, _ := ctx.Value(key{}).(string); return v }())
			ctx = context.WithValue(ctx, key{}, name)
			return ctx, func(*accesslog.Record, observe.Timings) { *log = append(*log, name+".done") }
		},
		UpstreamAttempt: func(_ context.Context, set func(string, string), _ observe.AttemptInfo) observe.AttemptDone {
			set("x-"+name, "1")
			*log = append(*log, name+".attempt")
			return func(int, error) { *log = append(*log, name+".attemptDone") }
		},
		Conn:           func(string, int) { *log = append(*log, name+".conn") },
		EndpointHealth: func(string, string, bool) { *log = append(*log, name+".health") },
	}
}

func TestCombineOrder(t *testing.T) {
	var log []string
	h := telemetry.Combine(recorder("a", &log), observe.Hooks{}, recorder("b", &log))
	_, done := h.Request(context.Background(), observe.RequestInfo{})
	set := map[string]string{}
	ad := h.UpstreamAttempt(context.Background(), func(k, v string) { set[k] = v }, observe.AttemptInfo{})
	ad(200, nil)
	done(&accesslog.Record{}, observe.Timings{})
	h.Conn("l", 1)
	h.EndpointHealth("s", "e", true)
	want := []string{
		"a.request saw ", "b.request saw a", "a.attempt", "b.attempt", "b.attemptDone", "a.attemptDone",
		"b.done", "a.done", "a.conn", "b.conn", "a.health", "b.health",
	}
	if !reflect.DeepEqual(log, want) {
		t.Fatalf("call order\n got %q\nwant %q", log, want)
	}
	if len(set) != 2 {
		t.Fatalf("headers set = %v", set)
	}
	// Three observers take the general path.
	log = nil
	h = telemetry.Combine(recorder("a", &log), recorder("b", &log), recorder("c", &log))
	_, done = h.Request(context.Background(), observe.RequestInfo{})
	h.UpstreamAttempt(context.Background(), func(string, string) {}, observe.AttemptInfo{})(200, nil)
	done(&accesslog.Record{}, observe.Timings{})
	want = []string{
		"a.request saw ", "b.request saw a", "c.request saw b",
		"a.attempt", "b.attempt", "c.attempt", "c.attemptDone", "b.attemptDone", "a.attemptDone",
		"c.done", "b.done", "a.done",
	}
	if !reflect.DeepEqual(log, want) {
		t.Fatalf("call order with three\n got %q\nwant %q", log, want)
	}
	if z := telemetry.Combine(observe.Hooks{}, observe.Hooks{}); z.Request != nil || z.UpstreamAttempt != nil || z.Conn != nil || z.EndpointHealth != nil {
		t.Fatal("combining empty hooks must install nothing")
	}
}

// TestMetricToTraceToLog follows one request from its exemplar on
// flexgw_request_duration_seconds to the exported trace to the access-log
// record: all three carry the same trace id.
func TestMetricToTraceToLog(t *testing.T) {
	col, err := otlpstandin.StartGRPC()
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()
	tr := tracing.New(tracing.Options{BatchTimeout: 50 * time.Millisecond})
	defer func() { _ = tr.Shutdown(context.Background()) }()
	err = tr.Configure(context.Background(), &ir.Tracing{
		Provider: ir.TracingProvider{Type: "opentelemetry", Properties: map[string]string{"address": "h2://" + col.Addr}},
		Sampling: ir.TracingSampling{Client: 100, Random: 100, Overall: 100},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(prometheus.NewRegistry(), metrics.Options{NoRuntimeCollectors: true})
	admin := httptest.NewServer(m.Handler())
	defer admin.Close()

	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	records := make(chan *accesslog.Record, 1)
	p := &hookproxy.Proxy{
		Hooks:    telemetry.Combine(tr.Hooks(), m.Hooks()),
		Upstream: u, Listener: "l", API: "orders", Route: "r0", Service: "ns/svc",
		OnRecord: func(r *accesslog.Record) { records <- r },
	}
	gw, stop, err := p.Serve()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get(gw + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	rec := <-records
	if len(rec.TraceID) != 32 {
		t.Fatalf("access log trace_id = %q", rec.TraceID)
	}
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, err := col.WaitSpans(2, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range spans {
		if s.TraceID != rec.TraceID {
			t.Errorf("span %q trace %s, access log %s", s.Name, s.TraceID, rec.TraceID)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, admin.URL, nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `flexgw_request_duration_seconds_bucket{api="orders",route="r0",le=`) ||
		!strings.Contains(string(body), `# {trace_id="`+rec.TraceID+`"}`) {
		t.Fatalf("no exemplar with trace %s in:\n%s", rec.TraceID, body)
	}
}
