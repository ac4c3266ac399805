package tracing_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/internal/otlpstandin"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/telemetry/internal/hookproxy"
)

// tracing-flex: the global configuration samples nothing (Flex's own
// example: 0/0/0 globally, sampling per API by the policy); the route
// carrying the override is sampled at its percentages, with its labels
// merged over the global ones and its span name; a route without one
// keeps the global setting.
func TestRouteOverride(t *testing.T) {
	col, err := otlpstandin.StartGRPC()
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()
	t.Setenv("FLEXGW_TEST_REGION", "eu-1")
	global := tracingConfig(col.Addr, "", 0)
	global.Sampling = ir.TracingSampling{Client: 0, Random: 0, Overall: 0}
	override := &ir.TracingOverride{
		Sampling: ir.TracingSampling{Client: 100, Random: 100, Overall: 100},
		SpanName: "orders-api",
		Labels: []ir.TracingLabel{
			{Name: "team", Type: "literal", Value: "checkout", DefaultValue: "checkout"}, // replaces the global "payments"
			{Name: "region", Type: "environment", Key: "FLEXGW_TEST_REGION", DefaultValue: "none"},
			{Name: "client", Type: "requestHeader", Key: "x-client", DefaultValue: "anonymous"},
		},
	}
	snap := &ir.Snapshot{Tracing: global, Listeners: []*ir.Listener{{APIs: []*ir.API{
		{Name: "orders", Namespace: "default", Routes: []*ir.Route{{Name: "traced", Tracing: override}, {Name: "plain"}}},
	}}}}
	tr := newTracer(t)
	if err := tr.ConfigureSnapshot(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	up := startUpstream(t)
	serve := func(route string) string {
		p := &hookproxy.Proxy{Hooks: tr.Hooks(), Upstream: up.url, Listener: "l", API: "default/orders", Route: route, Service: "default/svc"}
		u, stop, err := p.Serve()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		return u
	}
	traced, plain := serve("traced"), serve("plain")
	get := func(base string, hdr ...string) {
		req, _ := http.NewRequest(http.MethodGet, base+"/x", nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	get(plain)
	if tp := up.last(t).Get("traceparent"); !strings.HasSuffix(tp, "-00") {
		t.Fatalf("route without tracing-flex sampled (%q); the global sampling is 0%%", tp)
	}
	get(traced, "X-Client", "acme")
	if tp := up.last(t).Get("traceparent"); !strings.HasSuffix(tp, "-01") {
		t.Fatalf("route with tracing-flex at 100%% not sampled: %q", tp)
	}
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, err := col.WaitSpans(2, waitFor) // server + client span
	if err != nil {
		t.Fatal(err)
	}
	var server *otlpstandin.Span
	for i := range spans {
		if spans[i].Name == "orders-api" {
			server = &spans[i]
		}
	}
	if server == nil {
		t.Fatalf("no server span named by spanName: %+v", spans)
	}
	want := map[string]string{"team": "checkout", "region": "eu-1", "client": "acme", "tenant": "none", "flexgw.route": "traced"}
	for k, v := range want {
		if server.Attributes[k] != v {
			t.Errorf("span attribute %s = %q, want %q (all: %v)", k, server.Attributes[k], v, server.Attributes)
		}
	}
	for _, s := range col.Spans() {
		if s.Attributes["flexgw.route"] == "plain" {
			t.Errorf("a span of the unsampled route was exported: %+v", s)
		}
	}

	// The override going away is a change: the route falls back to 0%.
	snap.Listeners[0].APIs[0].Routes[0].Tracing = nil
	if err := tr.ConfigureSnapshot(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	get(traced)
	if tp := up.last(t).Get("traceparent"); !strings.HasSuffix(tp, "-00") {
		t.Fatalf("override removed but still sampled: %q", tp)
	}
}
