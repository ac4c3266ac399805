package tracing

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
)

// presetTraceIDKey carries the trace id the request hook already drew (and
// sampled on) to the SDK's ID generator, so the exported root span has the
// id the decision was made on.
type presetTraceIDKey struct{}

// idGenerator draws ids from math/rand/v2's per-thread generator: W3C ids
// need to be unique and random, not secret, and the SDK's default
// generator serialises every span on one mutex.
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if tid, ok := ctx.Value(presetTraceIDKey{}).(trace.TraceID); ok && tid.IsValid() {
		return tid, newSpanID()
	}
	return newTraceID(), newSpanID()
}

func (idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

func newTraceID() trace.TraceID {
	var id trace.TraceID
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:8], rand.Uint64())
		binary.BigEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}

// traceparent formats sc as a W3C traceparent header value.
func traceparent(sc trace.SpanContext) string {
	return formatTraceparent(sc.TraceID(), sc.SpanID(), sc.IsSampled())
}

// formatTraceparent is "00-<trace id>-<span id>-<flags>"; the trace id is
// bytes 3 to 35.
func formatTraceparent(tid trace.TraceID, sid trace.SpanID, sampled bool) string {
	var b [55]byte
	copy(b[:3], "00-")
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	b[53] = '0'
	b[54] = '0'
	if sampled {
		b[54] = '1'
	}
	return string(b[:])
}
