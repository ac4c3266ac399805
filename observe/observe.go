// Package observe is what a data plane tells its observers: the hooks
// telemetry (metrics, tracing, `flexgw top`'s stats) installs and the
// records they receive. It is a leaf, imported by both data planes (the
// built-in proxy and the Envoy mode's access-log and stats readers) and by
// every observer, so no observer depends on a data plane to get them.
package observe

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
	Request RequestHook

	// UpstreamAttempt is called before every attempt to reach an upstream.
	// set adds a header to the upstream request (trace propagation). The
	// returned function is called with the attempt's outcome: the response
	// status, or err when no response arrived.
	UpstreamAttempt AttemptHook

	// Conn is called with +1 when a downstream connection opens on a
	// listener and -1 when it closes.
	Conn func(listener string, delta int)

	// EndpointHealth is called when an endpoint's health changes (active
	// check or passive ejection) and once for each endpoint when a snapshot
	// is applied.
	EndpointHealth func(service, endpoint string, healthy bool)
}

// RequestHook observes one request from routing on; see Hooks.Request.
type RequestHook func(ctx context.Context, info RequestInfo) (context.Context, RequestDone)

// RequestDone is called exactly once when the request ends, before its
// access-log record is written.
type RequestDone func(rec *accesslog.Record, t Timings)

// AttemptHook observes one upstream attempt; see Hooks.UpstreamAttempt.
type AttemptHook func(ctx context.Context, set func(key, value string), info AttemptInfo) AttemptDone

// AttemptDone is called with an attempt's outcome: the response status, or
// err when no response arrived.
type AttemptDone func(status int, err error)

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

// EndpointStatus is one upstream endpoint's state as the built-in data
// plane reports it, for the admin API and `flexgw top`.
type EndpointStatus struct {
	Service  string `json:"service"`
	Endpoint string `json:"endpoint"`
	// Healthy is true when the endpoint takes new requests.
	Healthy bool `json:"healthy"`
	// ActiveCheck is true when an active health check is configured;
	// ActiveHealthy is its verdict (true without one).
	ActiveCheck   bool `json:"activeCheck"`
	ActiveHealthy bool `json:"activeHealthy"`
	// Ejected is set while passive health keeps the endpoint out.
	Ejected  bool  `json:"ejected"`
	InFlight int64 `json:"inFlight"`
}
