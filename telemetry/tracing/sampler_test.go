package tracing

import (
	"context"
	"math/rand/v2"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/flexgw/flexgw/ir"
)

func sampledFraction(s *flexSampler, ctx context.Context, n int) float64 {
	r := rand.New(rand.NewPCG(1, 2)) // fixed seed: the test is deterministic
	hits := 0
	for i := 0; i < n; i++ {
		var id trace.TraceID
		for j := range id {
			id[j] = byte(r.Uint32())
		}
		if s.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: id}).Decision == sdktrace.RecordAndSample {
			hits++
		}
	}
	return float64(hits) / float64(n)
}

func TestFlexSamplerPercentages(t *testing.T) {
	bg := context.Background()
	forced := withClientTrace(bg)
	for _, tc := range []struct {
		name     string
		sampling ir.TracingSampling
		ctx      context.Context
		lo, hi   float64
	}{
		{"all", ir.TracingSampling{Client: 100, Random: 100, Overall: 100}, bg, 1, 1},
		{"none", ir.TracingSampling{Client: 100, Random: 0, Overall: 100}, bg, 0, 0},
		{"random 1%", ir.TracingSampling{Client: 100, Random: 1, Overall: 100}, bg, 0.005, 0.015},
		{"random 50% overall 50%", ir.TracingSampling{Client: 100, Random: 50, Overall: 50}, bg, 0.23, 0.27},
		{"client header uses client%", ir.TracingSampling{Client: 100, Random: 0, Overall: 100}, forced, 1, 1},
		{"overall caps client", ir.TracingSampling{Client: 100, Random: 0, Overall: 0}, forced, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := sampledFraction(newFlexSampler(tc.sampling), tc.ctx, 20000)
			if got < tc.lo || got > tc.hi {
				t.Fatalf("sampled fraction %.4f, want within [%v, %v]", got, tc.lo, tc.hi)
			}
		})
	}
}

func TestFlexSamplerHonoursParent(t *testing.T) {
	s := newFlexSampler(ir.TracingSampling{Client: 0, Random: 0, Overall: 0})
	tid := trace.TraceID{1}
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
	if d := s.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: tid}).Decision; d != sdktrace.RecordAndSample {
		t.Fatalf("sampled parent: decision %v", d)
	}
	s = newFlexSampler(ir.TracingSampling{Client: 100, Random: 100, Overall: 100})
	ctx = trace.ContextWithRemoteSpanContext(context.Background(), parent.WithTraceFlags(0))
	if d := s.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: tid}).Decision; d != sdktrace.Drop {
		t.Fatalf("unsampled parent: decision %v", d)
	}
}

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		props map[string]string
		want  string
	}{
		{map[string]string{"address": "h2://collector:4317", "serviceType": "grpc"}, "grpc://collector:4317"},
		{map[string]string{"address": "collector:4317"}, "grpc://collector:4317"},
		{map[string]string{"address": "grpcs://collector:4317"}, "grpcs://collector:4317"},
		{map[string]string{"address": "http://collector:4318"}, "http://collector:4318/v1/traces"},
		{map[string]string{"address": "https://otlp.example.com/otlp/v1/traces"}, "https://otlp.example.com/otlp/v1/traces"},
		{map[string]string{"address": "collector:4318", "serviceType": "http"}, "http://collector:4318/v1/traces"},
	} {
		ep, err := ParseEndpoint(&ir.Tracing{Provider: ir.TracingProvider{Type: "opentelemetry", Properties: tc.props}})
		if err != nil {
			t.Errorf("%v: %v", tc.props, err)
			continue
		}
		if got := ep.String(); got != tc.want {
			t.Errorf("%v: endpoint %s, want %s", tc.props, got, tc.want)
		}
	}
}
