package tracing

import (
	"context"
	"encoding/binary"
	"fmt"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/flexgw/flexgw/ir"
)

// ClientTraceHeader is the header with which a client forces tracing of its
// request (Flex's and Envoy's x-client-trace-id); such requests are sampled
// at the `client` percentage instead of `random`.
const ClientTraceHeader = "X-Client-Trace-Id"

type clientTraceKey struct{}

// flexSampler implements Flex's sampling.{client,random,overall}:
//
//   - a request whose inbound traceparent carries a sampling decision keeps
//     it, so a trace started before flexgw stays whole (parent-based);
//   - otherwise a request with x-client-trace-id is sampled at `client`%,
//     any other request at `random`%;
//   - `overall`% then applies on top of that local decision.
//
// Every decision is a pure function of the trace id (like
// TraceIDRatioBased), so all replicas agree; random and overall read
// different halves of the id so that they compose as independent draws.
// Spans with a local parent (the client span of an upstream attempt)
// follow their parent.
type flexSampler struct {
	client, random, overall uint64 // thresholds over [0, 2^63)
	desc                    string
}

func newFlexSampler(s ir.TracingSampling) *flexSampler {
	return &flexSampler{
		client:  threshold(s.Client),
		random:  threshold(s.Random),
		overall: threshold(s.Overall),
		desc:    fmt.Sprintf("FlexSampler{client=%g%%,random=%g%%,overall=%g%%}", s.Client, s.Random, s.Overall),
	}
}

func threshold(pct float64) uint64 {
	switch {
	case pct <= 0:
		return 0
	case pct >= 100:
		return 1 << 63
	}
	return uint64(pct / 100 * (1 << 63))
}

func (s *flexSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	psc := trace.SpanContextFromContext(p.ParentContext)
	if psc.IsValid() {
		return decide(psc.IsSampled(), psc)
	}
	if _, decided := p.ParentContext.Value(presetTraceIDKey{}).(trace.TraceID); decided {
		// The request hook sampled this root already, with the route's
		// own sampler where tracing-flex gives one.
		return decide(true, psc)
	}
	forced, _ := p.ParentContext.Value(clientTraceKey{}).(bool)
	return decide(s.sampleRoot(p.TraceID, forced), psc)
}

// sampleRoot decides for a request that brought no sampling decision.
func (s *flexSampler) sampleRoot(id trace.TraceID, clientForced bool) bool {
	pct := s.random
	if clientForced {
		pct = s.client
	}
	return binary.BigEndian.Uint64(id[8:16])>>1 < pct &&
		binary.BigEndian.Uint64(id[0:8])>>1 < s.overall
}

func decide(sample bool, parent trace.SpanContext) sdktrace.SamplingResult {
	r := sdktrace.SamplingResult{Decision: sdktrace.Drop, Tracestate: parent.TraceState()}
	if sample {
		r.Decision = sdktrace.RecordAndSample
	}
	return r
}

func (s *flexSampler) Description() string { return s.desc }

// withClientTrace marks ctx as a request whose client asked for a trace.
func withClientTrace(ctx context.Context) context.Context {
	return context.WithValue(ctx, clientTraceKey{}, true)
}
