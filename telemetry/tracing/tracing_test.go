package tracing_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/internal/otlpstandin"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/telemetry/internal/hookproxy"
	"github.com/flexgw/flexgw/telemetry/tracing"
)

const waitFor = 20 * time.Second

// upstream records the trace headers of every request it receives.
type upstream struct {
	mu      sync.Mutex
	headers []http.Header
	url     *url.URL
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.headers = append(u.headers, r.Header.Clone())
		u.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/fail") {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	u.url, _ = url.Parse(srv.URL)
	return u
}

func (u *upstream) last(t *testing.T) http.Header {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.headers) == 0 {
		t.Fatal("upstream received no request")
	}
	return u.headers[len(u.headers)-1]
}

// gateway is the tracer wired to the stand-in data plane.
type gateway struct {
	url     string
	records chan *accesslog.Record
}

func startGateway(t *testing.T, tr *tracing.Tracer, up *upstream) *gateway {
	t.Helper()
	g := &gateway{records: make(chan *accesslog.Record, 100)}
	p := &hookproxy.Proxy{
		Hooks: tr.Hooks(), Upstream: up.url, Listener: "http_0.0.0.0_8081",
		API: "orders", Route: "orders-0", Service: "default/orders-svc",
		OnRecord: func(r *accesslog.Record) { g.records <- r },
	}
	u, stop, err := p.Serve()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	g.url = u
	return g
}

func (g *gateway) get(t *testing.T, path string, hdr map[string]string) *accesslog.Record {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.url+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	select {
	case rec := <-g.records:
		return rec
	case <-time.After(waitFor):
		t.Fatal("no access-log record")
		return nil
	}
}

func tracingConfig(address, serviceType string, random float64) *ir.Tracing {
	return &ir.Tracing{
		Provider: ir.TracingProvider{Type: "opentelemetry", Properties: map[string]string{
			"address": address, "serviceType": serviceType, "serviceName": "edge-gw",
			"resourceAttributes.deployment.environment": "test",
		}},
		Sampling: ir.TracingSampling{Client: 100, Random: random, Overall: 100},
		Labels: []ir.TracingLabel{
			{Name: "team", Type: "literal", DefaultValue: "payments"},
			{Name: "tenant", Type: "requestHeader", Key: "x-tenant", DefaultValue: "none"},
			{Name: "verb", Type: "requestHeader", Key: ":method"},
		},
		Source: ir.Source{File: "conf.d/tracing.yaml", Line: 3},
	}
}

func newTracer(t *testing.T) *tracing.Tracer {
	t.Helper()
	tr := tracing.New(tracing.Options{BatchTimeout: 50 * time.Millisecond})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = tr.Shutdown(ctx)
	})
	return tr
}

// TestTraceThroughGateway drives a request that carries a W3C traceparent
// and baggage through the stand-in data plane, for each OTLP protocol, and
// checks the exported spans, the propagated headers and the access log.
func TestTraceThroughGateway(t *testing.T) {
	for _, tc := range []struct {
		name        string
		start       func() (*otlpstandin.Collector, error)
		address     func(addr string) string
		serviceType string
	}{
		{"grpc", otlpstandin.StartGRPC, func(a string) string { return "h2://" + a }, "grpc"},
		{"http", otlpstandin.StartHTTP, func(a string) string { return "http://" + a }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			col, err := tc.start()
			if err != nil {
				t.Fatal(err)
			}
			defer col.Close()
			tr := newTracer(t)
			if err := tr.Configure(context.Background(), tracingConfig(tc.address(col.Addr), tc.serviceType, 0)); err != nil {
				t.Fatal(err)
			}
			up := startUpstream(t)
			g := startGateway(t, tr, up)

			const inTrace, inSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
			rec := g.get(t, "/orders/42", map[string]string{
				"traceparent": "00-" + inTrace + "-" + inSpan + "-01",
				"tracestate":  "vendor=abc",
				"baggage":     "customer=acme",
				"x-tenant":    "t-7",
			})
			if rec.TraceID != inTrace {
				t.Errorf("access-log trace_id = %q, want the inbound %q", rec.TraceID, inTrace)
			}
			if err := tr.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			spans, err := col.WaitSpans(2, waitFor)
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
			if server.TraceID != inTrace || server.ParentSpanID != inSpan {
				t.Errorf("server span trace=%s parent=%s, want %s/%s", server.TraceID, server.ParentSpanID, inTrace, inSpan)
			}
			if client.TraceID != inTrace || client.ParentSpanID != server.SpanID {
				t.Errorf("client span trace=%s parent=%s, want %s/%s (child of the server span)", client.TraceID, client.ParentSpanID, inTrace, server.SpanID)
			}
			if server.Name != "GET orders orders-0" {
				t.Errorf("server span name = %q", server.Name)
			}
			for k, want := range map[string]string{"team": "payments", "tenant": "t-7", "verb": "GET", "flexgw.api": "orders", "http.response.status_code": "200"} {
				if got := server.Attributes[k]; got != want {
					t.Errorf("server span attribute %s = %q, want %q", k, got, want)
				}
			}
			if client.Attributes["server.address"] != up.url.Host || client.Attributes["flexgw.service"] != "default/orders-svc" {
				t.Errorf("client span attributes = %v", client.Attributes)
			}
			if server.Resource["service.name"] != "edge-gw" || server.Resource["deployment.environment"] != "test" {
				t.Errorf("resource = %v", server.Resource)
			}

			h := up.last(t)
			want := "00-" + inTrace + "-" + client.SpanID + "-01"
			if got := h.Get("traceparent"); got != want {
				t.Errorf("upstream traceparent = %q, want %q (the client span)", got, want)
			}
			if got := h.Get("tracestate"); got != "vendor=abc" {
				t.Errorf("upstream tracestate = %q", got)
			}
			if got := h.Get("baggage"); got != "customer=acme" {
				t.Errorf("upstream baggage = %q", got)
			}
		})
	}
}

// TestSampling checks Flex's percentages: random 0 exports nothing but
// still propagates the trace id (sampled=0) and logs it; x-client-trace-id
// forces sampling at client%; an inbound sampled parent is honoured.
func TestSampling(t *testing.T) {
	col, err := otlpstandin.StartGRPC()
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()
	tr := newTracer(t)
	if err := tr.Configure(context.Background(), tracingConfig(col.Addr, "", 0)); err != nil {
		t.Fatal(err)
	}
	up := startUpstream(t)
	g := startGateway(t, tr, up)

	rec := g.get(t, "/a", nil)
	if len(rec.TraceID) != 32 {
		t.Fatalf("unsampled request trace_id = %q, want a 32-hex id", rec.TraceID)
	}
	tp := up.last(t).Get("traceparent")
	if !strings.HasPrefix(tp, "00-"+rec.TraceID+"-") || !strings.HasSuffix(tp, "-00") {
		t.Errorf("unsampled upstream traceparent = %q, want trace %s with flags 00", tp, rec.TraceID)
	}

	forced := g.get(t, "/b", map[string]string{tracing.ClientTraceHeader: "debug-1"})
	if !strings.HasSuffix(up.last(t).Get("traceparent"), "-01") {
		t.Errorf("x-client-trace-id request not sampled: %q", up.last(t).Get("traceparent"))
	}
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, err := col.WaitSpans(2, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range spans {
		if s.TraceID != forced.TraceID {
			t.Errorf("exported span of trace %s; only the forced trace %s is sampled", s.TraceID, forced.TraceID)
		}
	}
	// The 503 is an error on the server span.
	g.get(t, "/fail", map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := col.WaitSpans(4, waitFor); err != nil {
		t.Fatal(err)
	}
}

// TestAnypointProvider: Flex's anypoint provider is accepted. Without a
// collector address nothing can be exported in Local Mode, so tracing
// stays off and Explain says why; with provider.properties.address the
// spans go to that OTLP collector.
func TestAnypointProvider(t *testing.T) {
	off := &ir.Tracing{Provider: ir.TracingProvider{Type: "anypoint"}, Sampling: ir.TracingSampling{Client: 100, Random: 100, Overall: 100}}
	if err := tracing.Validate(off); err != nil {
		t.Fatalf("Validate(anypoint) = %v, want accepted", err)
	}
	tr := newTracer(t)
	if err := tr.Configure(context.Background(), off); err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() || !strings.Contains(off.Explain(), "Anypoint Monitoring") {
		t.Fatalf("anypoint without address: enabled=%v explain=%q", tr.Enabled(), off.Explain())
	}

	col, err := otlpstandin.StartGRPC()
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()
	on := tracingConfig(col.Addr, "", 100)
	on.Provider.Type = "anypoint"
	if err := tr.Configure(context.Background(), on); err != nil {
		t.Fatal(err)
	}
	if !tr.Enabled() {
		t.Fatal("anypoint with an address: tracing off")
	}
	up := startUpstream(t)
	g := startGateway(t, tr, up)
	rec := g.get(t, "/a", nil)
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, err := col.WaitSpans(2, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	if spans[0].TraceID != rec.TraceID {
		t.Errorf("collector got trace %s, want %s", spans[0].TraceID, rec.TraceID)
	}
}

// TestReconfigure moves export to another collector on reload and turns
// tracing off with a nil config.
func TestReconfigure(t *testing.T) {
	a, err := otlpstandin.StartGRPC()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := otlpstandin.StartHTTP()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tr := newTracer(t)
	if tr.Enabled() || tr.Hooks().Request != nil {
		t.Fatal("tracing must be off (no hooks) before Configure")
	}
	if err := tr.Configure(context.Background(), tracingConfig("h2://"+a.Addr, "grpc", 100)); err != nil {
		t.Fatal(err)
	}
	up := startUpstream(t)
	g := startGateway(t, tr, up)
	g.get(t, "/1", nil)
	if _, err := a.WaitSpans(2, waitFor); err != nil {
		t.Fatal(err)
	}
	// Same config (different source position): no change.
	same := tracingConfig("h2://"+a.Addr, "grpc", 100)
	same.Source.Line = 99
	if err := tr.Configure(context.Background(), same); err != nil {
		t.Fatal(err)
	}
	if err := tr.Configure(context.Background(), tracingConfig("http://"+b.Addr+"/v1/traces", "http", 100)); err != nil {
		t.Fatal(err)
	}
	rec := g.get(t, "/2", nil)
	spans, err := b.WaitSpans(2, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	if spans[0].TraceID != rec.TraceID {
		t.Errorf("collector B got trace %s, want %s", spans[0].TraceID, rec.TraceID)
	}
	if err := tr.Configure(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() || tr.Hooks().Request != nil {
		t.Fatal("tracing still on after Configure(nil)")
	}
	// Hooks installed earlier are now no-ops: no trace id, no header.
	rec = g.get(t, "/3", nil)
	if rec.TraceID != "" || up.last(t).Get("traceparent") != "" {
		t.Errorf("tracing off but trace_id=%q traceparent=%q", rec.TraceID, up.last(t).Get("traceparent"))
	}
}

func TestConfigureErrors(t *testing.T) {
	src := ir.Source{File: "conf.d/tracing.yaml", Line: 4}
	for _, tc := range []struct {
		name string
		cfg  ir.Tracing
		want string
	}{
		{"unknown provider", ir.Tracing{Provider: ir.TracingProvider{Type: "zipkin"}}, `conf.d/tracing.yaml:4: spec.tracing.provider.type "zipkin": not supported`},
		{"anypoint bad address", ir.Tracing{Provider: ir.TracingProvider{Type: "anypoint", Properties: map[string]string{"address": "ftp://x:1"}}}, `properties.address: unsupported scheme "ftp"`},
		{"no address", ir.Tracing{Provider: ir.TracingProvider{Type: "opentelemetry"}}, "conf.d/tracing.yaml:4: spec.tracing.provider.properties.address: required"},
		{"bad scheme", ir.Tracing{Provider: ir.TracingProvider{Type: "opentelemetry", Properties: map[string]string{"address": "ftp://x:1"}}}, `properties.address: unsupported scheme "ftp"`},
		{"bad service type", ir.Tracing{Provider: ir.TracingProvider{Type: "opentelemetry", Properties: map[string]string{"address": "h2://x:1", "serviceType": "thrift"}}}, `properties.serviceType: "thrift" is not grpc or http`},
		{"bad timeout", ir.Tracing{Provider: ir.TracingProvider{Type: "opentelemetry", Properties: map[string]string{"address": "h2://x:1", "timeout": "soon"}}}, `properties.timeout: "soon" is not a positive duration`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Source = src
			err := tracing.New(tracing.Options{}).Configure(context.Background(), &tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Configure error = %v, want it to contain %q", err, tc.want)
			}
			if err := tracing.Validate(&tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestReloadableHooksFollowConfigure installs the hooks while tracing is
// off (as a data plane that takes its hooks once does) and turns tracing
// on by a later Configure.
func TestReloadableHooksFollowConfigure(t *testing.T) {
	col, err := otlpstandin.StartHTTP()
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()
	tr := newTracer(t)
	up := startUpstream(t)
	records := make(chan *accesslog.Record, 10)
	p := &hookproxy.Proxy{
		Hooks: tr.ReloadableHooks(), Upstream: up.url, API: "orders", Route: "r", Service: "ns/svc",
		OnRecord: func(r *accesslog.Record) { records <- r },
	}
	gw, stop, err := p.Serve()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	g := &gateway{url: gw, records: records}
	if rec := g.get(t, "/off", nil); rec.TraceID != "" || up.last(t).Get("traceparent") != "" {
		t.Fatalf("tracing off: trace_id=%q traceparent=%q", rec.TraceID, up.last(t).Get("traceparent"))
	}
	if err := tr.Configure(context.Background(), tracingConfig("http://"+col.Addr, "", 100)); err != nil {
		t.Fatal(err)
	}
	rec := g.get(t, "/on", nil)
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, err := col.WaitSpans(2, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	if spans[0].TraceID != rec.TraceID {
		t.Fatalf("span trace %s, access log %s", spans[0].TraceID, rec.TraceID)
	}
}
