package accesslog

import (
	"encoding/json"
	"fmt"
	"time"
)

// wireRecord mirrors the JSON schema; durations are milliseconds and any
// field may be null, as Envoy's json_format writes them.
type wireRecord struct {
	StartTime               string   `json:"start_time"`
	Method                  *string  `json:"method"`
	Path                    *string  `json:"path"`
	Protocol                *string  `json:"protocol"`
	ResponseCode            *int     `json:"response_code"`
	ResponseFlags           *string  `json:"response_flags"`
	BytesReceived           *int64   `json:"bytes_received"`
	BytesSent               *int64   `json:"bytes_sent"`
	Duration                *float64 `json:"duration"`
	UpstreamServiceTime     any      `json:"upstream_service_time"`
	XForwardedFor           *string  `json:"x_forwarded_for"`
	UserAgent               *string  `json:"user_agent"`
	RequestID               *string  `json:"request_id"`
	Authority               *string  `json:"authority"`
	UpstreamHost            *string  `json:"upstream_host"`
	UpstreamCluster         *string  `json:"upstream_cluster"`
	DownstreamRemoteAddress *string  `json:"downstream_remote_address"`
	APIInstance             *string  `json:"api_instance"`
	Route                   *string  `json:"route"`
	GatewayID               *string  `json:"gateway_id"`
	TraceID                 *string  `json:"trace_id"`
	Policy                  *string  `json:"policy"`
	PolicyOutcome           *string  `json:"policy_outcome"`
}

// ParseJSON decodes one access-log line written by either data plane.
// It accepts what Envoy's json_format produces: nulls for missing values,
// numbers written as strings, and "-" for an empty response_flags.
func ParseJSON(line []byte) (Record, error) {
	var w wireRecord
	if err := json.Unmarshal(line, &w); err != nil {
		return Record{}, fmt.Errorf("access-log line: %w", err)
	}
	var r Record
	if w.StartTime != "" {
		t, err := time.Parse(time.RFC3339Nano, w.StartTime)
		if err != nil {
			return Record{}, fmt.Errorf("access-log line: start_time %q: %w", w.StartTime, err)
		}
		r.StartTime = t
	}
	str := func(p *string) string {
		if p == nil || *p == "-" {
			return ""
		}
		return *p
	}
	r.Method, r.Path, r.Protocol = str(w.Method), str(w.Path), str(w.Protocol)
	if w.ResponseCode != nil {
		r.ResponseCode = *w.ResponseCode
	}
	r.ResponseFlags = str(w.ResponseFlags)
	if w.BytesReceived != nil {
		r.BytesReceived = *w.BytesReceived
	}
	if w.BytesSent != nil {
		r.BytesSent = *w.BytesSent
	}
	if w.Duration != nil {
		r.Duration = time.Duration(*w.Duration * float64(time.Millisecond))
	}
	switch v := w.UpstreamServiceTime.(type) {
	case float64:
		r.UpstreamServiceTime = time.Duration(v * float64(time.Millisecond))
	case string: // Envoy's %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% is a string
		var ms float64
		if _, err := fmt.Sscanf(v, "%g", &ms); err == nil {
			r.UpstreamServiceTime = time.Duration(ms * float64(time.Millisecond))
		}
	}
	r.XForwardedFor, r.UserAgent, r.RequestID = str(w.XForwardedFor), str(w.UserAgent), str(w.RequestID)
	r.Authority, r.UpstreamHost, r.UpstreamCluster = str(w.Authority), str(w.UpstreamHost), str(w.UpstreamCluster)
	r.DownstreamRemoteAddress, r.APIInstance, r.Route = str(w.DownstreamRemoteAddress), str(w.APIInstance), str(w.Route)
	r.GatewayID, r.TraceID = str(w.GatewayID), str(w.TraceID)
	r.Policy, r.PolicyOutcome = str(w.Policy), str(w.PolicyOutcome)
	return r, nil
}
