package translate

import (
	"testing"

	"github.com/flexgw/flexgw/ir"
)

// tracing-flex, as policy.Shape leaves it on the routes, renders as each
// route's tracing (sampling in millionths, custom tags) and decorator
// (the span name); with no exporting spec.tracing there is nothing to
// override and nothing is rendered.
func TestRouteTracingRenders(t *testing.T) {
	override := &ir.TracingOverride{
		Sampling: ir.TracingSampling{Client: 100, Random: 12.5, Overall: 0.0001},
		SpanName: "orders-api",
		Labels: []ir.TracingLabel{
			{Name: "team", Type: "literal", Value: "checkout"},
			{Name: "client", Type: "requestHeader", Key: "x-client-id", DefaultValue: "unknown"},
			{Name: "region", Type: "environment", Key: "REGION"},
		},
	}
	for _, exported := range []bool{true, false} {
		s := basicSnapshot()
		if exported {
			s.Tracing = &ir.Tracing{Provider: ir.TracingProvider{Type: "opentelemetry", Properties: map[string]string{"address": "h2://127.0.0.1:4317"}},
				Sampling: ir.TracingSampling{Client: 100, Random: 100, Overall: 100}}
		}
		for _, l := range s.Listeners {
			for _, a := range l.APIs {
				for _, r := range a.Routes {
					r.Tracing = override
				}
			}
		}
		res, err := Translate(s, testOpts)
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, res)
		n := 0
		for _, rc := range res.Envoy.Routes {
			for _, vh := range rc.VirtualHosts {
				for _, r := range vh.Routes {
					if r.GetRoute() == nil {
						continue
					}
					n++
					tr, dec := r.GetTracing(), r.GetDecorator()
					if !exported {
						if tr != nil || dec != nil {
							t.Fatalf("route %s: tracing rendered without spec.tracing", r.Name)
						}
						continue
					}
					if err := r.ValidateAll(); err != nil {
						t.Fatalf("route %s: %v", r.Name, err)
					}
					if tr.GetRandomSampling().GetNumerator() != 125000 || tr.GetClientSampling().GetNumerator() != 1000000 || tr.GetOverallSampling().GetNumerator() != 1 {
						t.Fatalf("route %s sampling %v", r.Name, tr)
					}
					if len(tr.GetCustomTags()) != 3 || tr.GetCustomTags()[1].GetRequestHeader().GetName() != "x-client-id" || tr.GetCustomTags()[0].GetLiteral().GetValue() != "checkout" {
						t.Fatalf("route %s tags %v", r.Name, tr.GetCustomTags())
					}
					if dec.GetOperation() != "orders-api" {
						t.Fatalf("route %s decorator %v", r.Name, dec)
					}
				}
			}
		}
		if n == 0 {
			t.Fatal("no routes")
		}
	}
}
