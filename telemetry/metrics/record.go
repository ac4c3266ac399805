package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/observe"
)

// ObserveRecord counts one finished request from its access-log record: the
// way requests served by Envoy reach the flexgw_* request metrics, since
// Envoy's own stats are neither split by method nor carry the total-time
// and overhead histograms. It produces exactly the series the request hook
// produces for the same request (same label normalisation, same histograms,
// one policy decision when the record names a policy), because both end in
// the same observe. The record's trace_id, when it is a valid W3C trace id,
// becomes the exemplar.
//
// It is cheap enough to run on every access-log line: after a route's first
// request it does no label hashing, and allocates only the exemplar's
// label map when the record has a trace id.
func (m *Metrics) ObserveRecord(rec *accesslog.Record) {
	if rec == nil {
		return
	}
	m.observe(m.route(rec.APIInstance, rec.Route), methodIndex(rec.Method), recordExemplar(rec.TraceID), rec, RecordTimings(rec))
}

// RecordTimings returns the Timings the built-in data plane passes to the
// request hook for the request rec describes: the record holds the same
// numbers (Envoy's at millisecond resolution), and its upstream_cluster is
// the service key (envoy/translate names clusters after services).
func RecordTimings(rec *accesslog.Record) observe.Timings {
	return observe.Timings{
		Total:         rec.Duration,
		Upstream:      rec.UpstreamServiceTime,
		Service:       rec.UpstreamCluster,
		RequestBytes:  rec.BytesReceived,
		ResponseBytes: rec.BytesSent,
	}
}

// recordExemplar returns the exemplar labels of a record's trace id, or nil
// when it is not a valid W3C trace id (32 lowercase hex digits, not all
// zero): a malformed log line must not make an exemplar Prometheus would
// reject, nor one that links nowhere.
//
// Unlike the hook, the record does not say whether the trace was sampled;
// an exemplar may therefore name a trace the backend never received.
func recordExemplar(id string) prometheus.Labels {
	if len(id) != 32 {
		return nil
	}
	zero := true
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c == '0':
		case c >= '1' && c <= '9', c >= 'a' && c <= 'f':
			zero = false
		default:
			return nil
		}
	}
	if zero {
		return nil
	}
	return prometheus.Labels{"trace_id": id}
}
