package dataplane

import (
	"context"
	"time"

	"github.com/flexgw/flexgw/accesslog"
)

// Hooks let telemetry (metrics, tracing) observe the request path without the
// data plane knowing about Prometheus or OpenTelemetry. Every field is
// optional; a nil hook costs one nil check.
type Hooks struct {
	// Request is called once a request is matched to an API and route (both
	// empty for a request no API serves). It returns the context the request
	// continues with (a tracer stores its span there) and a function the data
	// plane calls exactly once when the request ends, before the access-log
	// record is written, so it may fill rec.TraceID.
	Request func(ctx context.Context, info RequestInfo) (context.Context, func(rec *accesslog.Record, t Timings))

	// UpstreamAttempt is called before every attempt to reach an upstream.
	// set adds a header to the upstream request (trace propagation). The
	// returned function is called with the attempt's outcome: the response
	// status, or err when no response arrived.
	UpstreamAttempt func(ctx context.Context, set func(key, value string), info AttemptInfo) func(status int, err error)

	// Conn is called with +1 when a downstream connection opens on a
	// listener and -1 when it closes.
	Conn func(listener string, delta int)

	// EndpointHealth is called when an endpoint's health changes (active
	// check or passive ejection) and once for each endpoint when a snapshot
	// is applied.
	EndpointHealth func(service, endpoint string, healthy bool)
}

// RequestInfo describes a request at routing time. Values come from config
// (API, Route) so they are safe to use as metric labels; Method is the
// request method as received (callers must normalise unknown methods).
type RequestInfo struct {
	Listener string
	API      string
	Route    string
	Method   string
	// Header is the inbound request header (read-only), for trace context.
	Header func(key string) string
}

// AttemptInfo describes one upstream attempt.
type AttemptInfo struct {
	API      string
	Route    string
	Service  string
	Endpoint string
	Attempt  int
	Method   string
	Path     string
}

// Timings splits a request's time between the gateway and the upstream.
type Timings struct {
	Total    time.Duration
	Upstream time.Duration
	// Service is the service key (namespace/name) the request went to, "" if none.
	Service       string
	RequestBytes  int64
	ResponseBytes int64
}
