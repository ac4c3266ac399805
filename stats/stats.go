// Package stats is the agent-side aggregator behind `flexgw top`. It observes
// the data plane through observe.Hooks and access-log records through the
// accesslog sink interface, keeps per-API, per-route and per-service rolling
// one-second buckets (rates, status classes, latency histograms, policy
// denials) and a ring of recent records, and serves them on the admin API:
// GET /api/v1/top (one JSON snapshot, see package topapi) and
// GET /api/v1/logs/stream (server-sent access-log records). The agent
// computes; the TUI only renders.
package stats

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/observe"
	"github.com/flexgw/flexgw/stats/topapi"
)

type ratesOut = topapi.Rates

// outcomeDenied is policy.Denied, the access-log policy_outcome of a
// request a policy refused (kept literal so stats does not pull the policy
// engine and its Envoy protos into every binary that links it).
const outcomeDenied = "denied"

// Status is the gateway identity and reload state shown in the header.
type Status struct {
	GatewayID string
	Version   string
	// DataPlane is "envoy" or "builtin".
	DataPlane       string
	SnapshotVersion uint64
	ReloadOK        bool
	ReloadError     string
	ReloadAt        time.Time
}

// EndpointHealth is one endpoint's health as the data plane sees it.
type EndpointHealth struct {
	Service  string
	Endpoint string
	Healthy  bool
	// Active is "healthy", "unhealthy" or "" when no active check runs.
	Active string
	// Passive is "ok", "ejected" or "" when no outlier detection runs.
	Passive string
}

// Options are the sources Stats reads when it builds a snapshot. Every
// field is optional; a nil source shows as empty.
type Options struct {
	// Status returns the header's identity and last reload result.
	Status func() Status
	// Snapshot returns the current IR, so APIs, routes and endpoints are
	// listed before they see traffic.
	Snapshot func() *ir.Snapshot
	// Endpoints returns per-endpoint health with the active/passive split.
	// When nil, health comes from the EndpointHealth hook (no split).
	Endpoints func() []EndpointHealth
	// Kernel returns the eBPF probe's state (Enabled=false and a Reason
	// when the probe does not run).
	Kernel func() topapi.Kernel
	// Pipeline returns the log pipeline's per-exporter counters.
	Pipeline func() topapi.Pipeline
	// CountAccessLog makes Write also count each record as a request (API,
	// route, status, duration, upstream time, policy outcome). Set it when
	// the data plane is Envoy, whose requests never pass the Hooks; leave
	// it off with the built-in data plane, which calls both (they would
	// count twice).
	CountAccessLog bool
	// Token, when set, is required as "Authorization: Bearer <token>" by
	// Handler (leave empty when the admin server authenticates already).
	Token string
	// LogRing is how many recent records are kept for new log subscribers
	// (default 1024). SubscriberBuffer bounds each subscriber's queue
	// (default 512); a subscriber that falls behind loses records.
	LogRing          int
	SubscriberBuffer int
	// MaxSubscribers caps concurrent log streams (default 64): each costs
	// the gateway a filter check and a channel send per record.
	MaxSubscribers int
	// Now is the clock (tests); default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

type seriesKey struct{ api, name string }

// entry is what the Request hook resolves once per (API, route): the
// series a finished request updates and a pre-built done function, so the
// hot path allocates nothing.
type entry struct {
	st    *Stats
	name  string
	api   *series
	route *series
	done  observe.RequestDone
}

// Stats aggregates request statistics and recent access-log records.
type Stats struct {
	opts  Options
	now   func() time.Time
	start time.Time
	log   *slog.Logger

	mu       sync.RWMutex
	entries  map[seriesKey]*entry
	apis     map[string]*series
	routes   map[seriesKey]*series
	services map[seriesKey]*series
	health   map[seriesKey]bool

	logs *broker

	tops topCache

	rateMu   sync.Mutex
	sentPrev map[string]sentSample
}

type sentSample struct {
	at   time.Time
	sent uint64
	rate float64
}

// New returns a Stats reading the given sources.
func New(opts Options) *Stats {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.Default()
	}
	if opts.LogRing <= 0 {
		opts.LogRing = 1024
	}
	if opts.SubscriberBuffer <= 0 {
		opts.SubscriberBuffer = 512
	}
	if opts.MaxSubscribers <= 0 {
		opts.MaxSubscribers = 64
	}
	return &Stats{
		opts:     opts,
		now:      now,
		start:    now(),
		log:      lg.With("component", "stats"),
		entries:  map[seriesKey]*entry{},
		apis:     map[string]*series{},
		routes:   map[seriesKey]*series{},
		services: map[seriesKey]*series{},
		health:   map[seriesKey]bool{},
		logs:     newBroker(opts.LogRing, opts.SubscriberBuffer, opts.MaxSubscribers),
		sentPrev: map[string]sentSample{},
	}
}

// Hooks returns the data-plane hooks that feed the statistics. Combine them
// with the metrics and tracing hooks; these never block.
func (s *Stats) Hooks() observe.Hooks {
	return observe.Hooks{
		Request: func(ctx context.Context, info observe.RequestInfo) (context.Context, observe.RequestDone) {
			return ctx, s.entry(info.API, info.Route).done
		},
		EndpointHealth: func(service, endpoint string, healthy bool) {
			s.mu.Lock()
			s.health[seriesKey{service, endpoint}] = healthy
			s.mu.Unlock()
		},
	}
}

func (s *Stats) entry(api, route string) *entry {
	k := seriesKey{api, route}
	s.mu.RLock()
	e := s.entries[k]
	s.mu.RUnlock()
	if e != nil {
		return e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e = s.entries[k]; e != nil {
		return e
	}
	e = &entry{st: s, name: api, api: s.apis[api], route: &series{}}
	if e.api == nil {
		e.api = &series{}
		s.apis[api] = e.api
	}
	s.routes[k] = e.route
	e.done = e.finish
	s.entries[k] = e
	return e
}

func (s *Stats) service(api, svc string) *series {
	k := seriesKey{api, svc}
	s.mu.RLock()
	ss := s.services[k]
	s.mu.RUnlock()
	if ss != nil {
		return ss
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss = s.services[k]; ss == nil {
		ss = &series{}
		s.services[k] = ss
	}
	return ss
}

func (e *entry) finish(rec *accesslog.Record, t observe.Timings) {
	e.observe(e.st.now().Unix(), rec, t)
}

func (e *entry) observe(sec int64, rec *accesslog.Record, t observe.Timings) {
	o := observation{
		sec:     sec,
		totalUs: t.Total.Microseconds(),
		upUs:    t.Upstream.Microseconds(),
	}
	if rec != nil {
		o.status = rec.ResponseCode
		o.denied = rec.PolicyOutcome == outcomeDenied
	}
	e.route.observe(&o)
	e.api.observe(&o)
	if t.Service != "" {
		// Services are tracked per API so a drill-down shows what this
		// API's traffic met upstream.
		e.st.service(e.name, t.Service).observe(&o)
	}
}

var _ accesslog.Sink = (*Stats)(nil)

// Write implements the access-log sink: it copies rec into the ring of
// recent records and offers it to every log subscriber without blocking.
func (s *Stats) Write(rec *accesslog.Record) {
	if rec == nil {
		return
	}
	if s.opts.CountAccessLog {
		// The record's own time places it in the right second even when
		// the pipeline delivers it late (Envoy flushes its log in batches).
		sec := rec.StartTime.Add(rec.Duration).Unix()
		if now := s.now().Unix(); rec.StartTime.IsZero() || sec > now || sec <= now-historySeconds {
			sec = now
		}
		s.entry(rec.APIInstance, rec.Route).observe(sec, rec, observe.Timings{
			Total: rec.Duration, Upstream: rec.UpstreamServiceTime, Service: rec.UpstreamCluster,
		})
	}
	s.logs.publish(rec)
}
