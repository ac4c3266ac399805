// Package accesslog defines flexgw's access-log record: one JSON object per
// request, identical whichever data plane served it. The built-in data plane
// fills Record directly; Envoy produces the same fields through its
// json_format (see docs/access-log.md); logpipe decodes both.
package accesslog

import (
	"strconv"
	"time"

	"github.com/flexgw/flexgw/internal/jsonstr"
)

// Unmatched is the one name of requests no API (or no route of their API)
// served: their api and route label in the metrics, their row in `flexgw
// top` and their API and route in its Logs view. The record itself keeps
// api_instance and route empty, as Envoy's json_format writes them.
const Unmatched = "unmatched"

// Record is one request as the gateway saw it. JSON names follow Envoy's
// access-log operators where one exists, so Envoy's json_format can emit
// the identical object.
type Record struct {
	StartTime time.Time `json:"start_time"`
	Method    string    `json:"method"`
	// Path is the original request path with query, as received.
	Path     string `json:"path"`
	Protocol string `json:"protocol"`
	// ResponseCode is 0 when no response was sent (client went away first).
	ResponseCode int `json:"response_code"`
	// ResponseFlags uses Envoy's short codes (UF, UH, UT, URX, DC, NR, ...), "-" when none.
	ResponseFlags string `json:"response_flags"`
	BytesReceived int64  `json:"bytes_received"`
	BytesSent     int64  `json:"bytes_sent"`
	// Duration is total time from first byte received to last byte sent.
	Duration time.Duration `json:"duration"`
	// UpstreamServiceTime is time from the upstream request start to its
	// response headers; 0 when no upstream was reached.
	UpstreamServiceTime     time.Duration `json:"upstream_service_time"`
	XForwardedFor           string        `json:"x_forwarded_for"`
	UserAgent               string        `json:"user_agent"`
	RequestID               string        `json:"request_id"`
	Authority               string        `json:"authority"`
	UpstreamHost            string        `json:"upstream_host"`
	UpstreamCluster         string        `json:"upstream_cluster"`
	DownstreamRemoteAddress string        `json:"downstream_remote_address"`
	APIInstance             string        `json:"api_instance"`
	Route                   string        `json:"route"`
	GatewayID               string        `json:"gateway_id"`
	TraceID                 string        `json:"trace_id"`
	// Policy and PolicyOutcome name the policy that decided the request's
	// fate (a denial) or the last policy that ran, and its outcome.
	Policy        string `json:"policy"`
	PolicyOutcome string `json:"policy_outcome"`
}

// Fields lists the JSON field names in output order; docs/access-log.md and
// the Envoy json_format are checked against it.
var Fields = []string{
	"start_time", "method", "path", "protocol", "response_code", "response_flags",
	"bytes_received", "bytes_sent", "duration", "upstream_service_time",
	"x_forwarded_for", "user_agent", "request_id", "authority", "upstream_host",
	"upstream_cluster", "downstream_remote_address", "api_instance", "route",
	"gateway_id", "trace_id", "policy", "policy_outcome",
}

// AppendJSON appends the record as one JSON object (no newline) to b.
// Durations are integer milliseconds, as Envoy's %DURATION% prints them.
// Empty strings are written as null, as Envoy's json_format writes a
// missing value, so both data planes produce byte-compatible lines.
func (r *Record) AppendJSON(b []byte) []byte {
	b = append(b, `{"start_time":"`...)
	b = r.StartTime.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = append(b, '"')
	b = appendStrField(b, "method", r.Method)
	b = appendStrField(b, "path", r.Path)
	b = appendStrField(b, "protocol", r.Protocol)
	b = append(b, `,"response_code":`...)
	b = strconv.AppendInt(b, int64(r.ResponseCode), 10)
	flags := r.ResponseFlags
	if flags == "" {
		flags = "-"
	}
	b = appendStrField(b, "response_flags", flags)
	b = append(b, `,"bytes_received":`...)
	b = strconv.AppendInt(b, r.BytesReceived, 10)
	b = append(b, `,"bytes_sent":`...)
	b = strconv.AppendInt(b, r.BytesSent, 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, r.Duration.Milliseconds(), 10)
	b = append(b, `,"upstream_service_time":`...)
	if r.UpstreamServiceTime > 0 || r.UpstreamHost != "" {
		b = strconv.AppendInt(b, r.UpstreamServiceTime.Milliseconds(), 10)
	} else {
		b = append(b, "null"...)
	}
	b = appendStrField(b, "x_forwarded_for", r.XForwardedFor)
	b = appendStrField(b, "user_agent", r.UserAgent)
	b = appendStrField(b, "request_id", r.RequestID)
	b = appendStrField(b, "authority", r.Authority)
	b = appendStrField(b, "upstream_host", r.UpstreamHost)
	b = appendStrField(b, "upstream_cluster", r.UpstreamCluster)
	b = appendStrField(b, "downstream_remote_address", r.DownstreamRemoteAddress)
	b = appendStrField(b, "api_instance", r.APIInstance)
	b = appendStrField(b, "route", r.Route)
	b = appendStrField(b, "gateway_id", r.GatewayID)
	b = appendStrField(b, "trace_id", r.TraceID)
	b = appendStrField(b, "policy", r.Policy)
	b = appendStrField(b, "policy_outcome", r.PolicyOutcome)
	return append(b, '}')
}

// MarshalJSON implements json.Marshaler with the wire schema of AppendJSON.
func (r *Record) MarshalJSON() ([]byte, error) { return r.AppendJSON(nil), nil }

func appendStrField(b []byte, name, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	if v == "" {
		return append(b, "null"...)
	}
	return AppendString(b, v)
}

// AppendString appends s as a JSON string literal (jsonstr.Append:
// invalid UTF-8 becomes U+FFFD, so a hostile header can never break the
// line format).
func AppendString(b []byte, s string) []byte { return jsonstr.Append(b, s) }
