package telemetry_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/dataplane"
	"github.com/flexgw/flexgw/internal/otlpstandin"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/telemetry"
)

type recordSink struct {
	mu   sync.Mutex
	recs []accesslog.Record
}

func (s *recordSink) Write(r *accesslog.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, *r)
}

func (s *recordSink) wait(t *testing.T, n int) []accesslog.Record {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s.mu.Lock()
		got := append([]accesslog.Record(nil), s.recs...)
		s.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log has %d records, want %d", len(got), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBuiltinDataPlane wires telemetry into the real built-in data plane
// as the agent does (Telemetry.Hooks in dataplane.Options.Hooks, Apply per
// snapshot) and checks one request end to end: metrics scraped over HTTP,
// spans at the stand-in collector, traceparent at the upstream, trace_id
// in the access log.
func TestBuiltinDataPlane(t *testing.T) {
	col, err := otlpstandin.StartGRPC()
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()
	tel := telemetry.New(prometheus.NewRegistry(), nil)
	defer func() { _ = tel.Shutdown(context.Background()) }()
	admin := httptest.NewServer(tel.Handler())
	defer admin.Close()

	var mu sync.Mutex
	var upHeaders []http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		upHeaders = append(upHeaders, r.Header.Clone())
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	defer up.Close()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(up.URL, "http://"))
	p, _ := strconv.Atoi(port)

	sink := &recordSink{}
	dp := dataplane.New(dataplane.Options{
		GatewayID: "gw-test",
		AccessLog: sink,
		Hooks:     tel.Hooks(),
	})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = dp.Shutdown(ctx)
	}()
	snap := &ir.Snapshot{
		Version: 1,
		Listeners: []*ir.Listener{{Name: "http_127.0.0.1_0", Protocol: ir.HTTP, Host: "127.0.0.1", Port: 0, APIs: []*ir.API{{
			Name: "orders", Namespace: "default", BasePath: "/",
			Routes: []*ir.Route{{Name: "r0", Destinations: []ir.Destination{{Service: "default/up", Weight: 100}}}},
		}}}},
		Services: []*ir.Service{{Name: "up", Namespace: "default", Protocol: ir.HTTP, LB: ir.RoundRobin,
			ConnectTimeout: 2 * time.Second, Endpoints: []ir.Endpoint{{Host: host, Port: p}}}},
	}
	snap.Tracing = &ir.Tracing{
		Provider: ir.TracingProvider{Type: "opentelemetry", Properties: map[string]string{"address": "h2://" + col.Addr}},
		Sampling: ir.TracingSampling{Client: 100, Random: 100, Overall: 100},
	}
	if err := dp.Apply(snap); err != nil {
		t.Fatal(err)
	}
	if err := tel.Apply(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	gw := "http://" + dp.Addr("127.0.0.1:0")

	// An inbound trace context: the gateway's server span joins it, and
	// the upstream sees only the gateway's client span as its parent (the
	// hook's traceparent replaces the client's).
	const inboundTrace, inboundSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest("GET", gw+"/orders/1", nil)
	req.Header.Set("traceparent", "00-"+inboundTrace+"-"+inboundSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}

	rec := sink.wait(t, 1)[0]
	if len(rec.TraceID) != 32 {
		t.Fatalf("access log trace_id = %q", rec.TraceID)
	}
	if err := tel.Tracer.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, err := col.WaitSpans(2, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var server, client otlpstandin.Span
	for _, s := range spans {
		switch s.Kind {
		case tracepb.Span_SPAN_KIND_SERVER:
			server = s
		case tracepb.Span_SPAN_KIND_CLIENT:
			client = s
		}
	}
	if rec.TraceID != inboundTrace || server.TraceID != rec.TraceID || server.ParentSpanID != inboundSpan || client.ParentSpanID != server.SpanID || client.TraceID != rec.TraceID {
		t.Errorf("spans: server %+v client %+v, access log trace %s", server, client, rec.TraceID)
	}
	mu.Lock()
	tps := upHeaders[0].Values("traceparent")
	mu.Unlock()
	if want := "00-" + rec.TraceID + "-" + client.SpanID + "-01"; len(tps) != 1 || tps[0] != want {
		t.Errorf("upstream traceparent = %q, want [%s] (the client span)", tps, want)
	}

	scrape, err := http.Get(admin.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(scrape.Body)
	scrape.Body.Close()
	for _, want := range []string{
		`flexgw_requests_total{api="default/orders",code_class="2xx",method="GET",route="r0"} 1`,
		`flexgw_upstream_duration_seconds_count{api="default/orders",route="r0",service="default/up"} 1`,
		`flexgw_snapshot_info{version="1"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}

// TestApplyBadTracing keeps serving metrics and reports the tracing error
// of a snapshot whose tracing provider flexgw cannot use.
func TestApplyBadTracing(t *testing.T) {
	tel := telemetry.New(prometheus.NewRegistry(), nil)
	snap := &ir.Snapshot{Version: 4, Tracing: &ir.Tracing{
		Provider: ir.TracingProvider{Type: "zipkin"},
		Source:   ir.Source{File: "conf.d/tracing.yaml", Line: 2},
	}}
	err := tel.Apply(context.Background(), snap)
	if err == nil || !strings.Contains(err.Error(), `conf.d/tracing.yaml:2: spec.tracing.provider.type "zipkin"`) {
		t.Fatalf("Apply error = %v", err)
	}
	if tel.Tracer.Enabled() {
		t.Fatal("tracing on after a bad config")
	}
	admin := httptest.NewServer(tel.Handler())
	defer admin.Close()
	resp, err := http.Get(admin.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `flexgw_snapshot_info{version="4"} 1`) {
		t.Fatalf("snapshot 4 not recorded:\n%s", body)
	}
}
