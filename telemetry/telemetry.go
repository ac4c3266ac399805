// Package telemetry composes flexgw's observers of the request path —
// Prometheus metrics (telemetry/metrics), OpenTelemetry traces
// (telemetry/tracing) and the live stats behind `flexgw top` — into the one
// observe.Hooks value the data plane calls. Telemetry (bundle.go) is the
// one value the agent wires: hooks for the data plane, /metrics, and Apply
// per accepted snapshot.
package telemetry

import (
	"context"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/observe"
)

// Combine returns hooks that call each of hooks in order. Request hooks run
// first to last, each getting the context the previous one returned;
// their done functions run last to first (like deferred calls), so an
// earlier hook wraps the later ones. Put tracing first: its span is then in
// the context the metrics hook sees (for exemplars), and its done function,
// which fills rec.TraceID, runs after the others have read the record.
//
// Nil hooks are skipped, and when at most one set of hooks has a given
// field it is returned as is, so combining with disabled telemetry costs
// nothing on the request path.
func Combine(hooks ...observe.Hooks) observe.Hooks {
	var (
		reqs     []observe.RequestHook
		attempts []observe.AttemptHook
		conns    []func(string, int)
		healths  []func(string, string, bool)
	)
	for _, h := range hooks {
		if h.Request != nil {
			reqs = append(reqs, h.Request)
		}
		if h.UpstreamAttempt != nil {
			attempts = append(attempts, h.UpstreamAttempt)
		}
		if h.Conn != nil {
			conns = append(conns, h.Conn)
		}
		if h.EndpointHealth != nil {
			healths = append(healths, h.EndpointHealth)
		}
	}
	var out observe.Hooks
	switch len(reqs) {
	case 0:
	case 1:
		out.Request = reqs[0]
	default:
		out.Request = combineRequest(reqs)
	}
	switch len(attempts) {
	case 0:
	case 1:
		out.UpstreamAttempt = attempts[0]
	default:
		out.UpstreamAttempt = combineAttempt(attempts)
	}
	switch len(conns) {
	case 0:
	case 1:
		out.Conn = conns[0]
	default:
		out.Conn = func(listener string, delta int) {
			for _, f := range conns {
				f(listener, delta)
			}
		}
	}
	switch len(healths) {
	case 0:
	case 1:
		out.EndpointHealth = healths[0]
	default:
		out.EndpointHealth = func(service, endpoint string, healthy bool) {
			for _, f := range healths {
				f(service, endpoint, healthy)
			}
		}
	}
	return out
}

func combineRequest(reqs []observe.RequestHook) observe.RequestHook {
	if len(reqs) == 2 {
		// Tracing + metrics, the common case: the done closure holds just
		// the two done functions.
		first, second := reqs[0], reqs[1]
		return func(ctx context.Context, info observe.RequestInfo) (context.Context, observe.RequestDone) {
			ctx, d1 := first(ctx, info)
			ctx, d2 := second(ctx, info)
			return ctx, func(rec *accesslog.Record, t observe.Timings) {
				if d2 != nil {
					d2(rec, t)
				}
				if d1 != nil {
					d1(rec, t)
				}
			}
		}
	}
	return func(ctx context.Context, info observe.RequestInfo) (context.Context, observe.RequestDone) {
		var dones [4]observe.RequestDone
		done := dones[:0]
		for _, f := range reqs {
			var d observe.RequestDone
			ctx, d = f(ctx, info)
			if d != nil {
				done = append(done, d)
			}
		}
		return ctx, func(rec *accesslog.Record, t observe.Timings) {
			for i := len(done) - 1; i >= 0; i-- {
				done[i](rec, t)
			}
		}
	}
}

func combineAttempt(attempts []observe.AttemptHook) observe.AttemptHook {
	return func(ctx context.Context, set func(string, string), info observe.AttemptInfo) observe.AttemptDone {
		var dones [4]observe.AttemptDone
		done := dones[:0]
		for _, f := range attempts {
			if d := f(ctx, set, info); d != nil {
				done = append(done, d)
			}
		}
		return func(status int, err error) {
			for i := len(done) - 1; i >= 0; i-- {
				done[i](status, err)
			}
		}
	}
}
