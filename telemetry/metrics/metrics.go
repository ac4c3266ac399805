// Package metrics is flexgw's Prometheus instrumentation: the flexgw_*
// request, upstream, connection, policy and config metrics, fed by the
// built-in data plane's telemetry hooks (observe.Hooks) or, with Envoy as
// the data plane, by the access-log records Envoy writes (ObserveRecord),
// and served on the admin API's /metrics, in the Prometheus text format or,
// when the scraper asks for it, OpenMetrics with trace-id exemplars on the
// latency histograms.
//
// Label values come only from configuration names (API, route, service,
// listener, policy) and from small closed sets (normalised method, status
// class, outcome), never from request input, so series count is bounded by
// the config, not by traffic.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/observe"
)

// Unmatched is the api and route label of a request no API (or no route of
// its API) serves, so such traffic is counted without an empty label; the
// same name top and its Logs view show.
const Unmatched = accesslog.Unmatched

// DefaultDurationBuckets spans 0.5 ms to 30 s: a gateway's own overhead sits
// at the low end, slow upstreams and timeouts at the high end.
var DefaultDurationBuckets = []float64{
	.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30,
}

// DefaultSizeBuckets spans 64 B to 16 MiB in powers of four.
var DefaultSizeBuckets = prometheus.ExponentialBuckets(64, 4, 10)

// Options tunes New. The zero value is what the agent uses.
type Options struct {
	// Gatherer is what Handler serves. It defaults to the Registerer given
	// to New when that is also a Gatherer (a *prometheus.Registry), so
	// collectors other packages register there (logpipe, ebpf, envoy stats)
	// are served too.
	Gatherer prometheus.Gatherer
	// DurationBuckets and SizeBuckets override the histogram buckets.
	DurationBuckets []float64
	SizeBuckets     []float64
	// NoRuntimeCollectors skips the Go runtime and process collectors, for
	// a registry that already has them.
	NoRuntimeCollectors bool
	Logger              *slog.Logger
}

// Metrics owns every flexgw_* data-plane and config metric. It is safe for
// concurrent use; one Metrics lives for the life of the process and
// survives reloads.
type Metrics struct {
	log      *slog.Logger
	gatherer prometheus.Gatherer

	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	upstream     *prometheus.HistogramVec
	overhead     *prometheus.HistogramVec
	reqSize      *prometheus.HistogramVec
	respSize     *prometheus.HistogramVec
	conns        *prometheus.GaugeVec
	healthy      *prometheus.GaugeVec
	policies     *prometheus.CounterVec
	reloads      *prometheus.CounterVec
	lastReloadOK prometheus.Gauge
	snapshotInfo *prometheus.GaugeVec

	// Label-bound children, resolved once per label set so the request
	// path does no label hashing or string-map allocation.
	routes    cowMap[routeKey, *routeObs]
	apis      cowMap[string, *apiObs]
	listeners cowMap[string, prometheus.Gauge]

	snapshotVersion atomic.Uint64
}

type routeKey struct{ api, route string }

// routeObs holds the observers bound to one (api, route).
type routeObs struct {
	api, route string
	apiObs     *apiObs
	duration   prometheus.Observer
	// requests is filled lazily: creating all method×class children up
	// front would export 60 zero series per route.
	requests [numMethods][numClasses]atomic.Pointer[counterRef]
	upstream cowMap[string, prometheus.Observer]
}

// apiObs holds the observers bound to one api.
type apiObs struct {
	overhead prometheus.Observer
	reqSize  prometheus.Observer
	respSize prometheus.Observer
	policies cowMap[[2]string, prometheus.Counter]
}

type counterRef struct{ c prometheus.Counter }

// New creates the metrics and registers them (and, unless opts says not
// to, the Go runtime and process collectors) with reg; a nil reg gets a
// fresh registry. It panics if a metric is already registered with reg,
// which is a wiring bug, not a runtime condition.
func New(reg prometheus.Registerer, opts Options) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if opts.Gatherer == nil {
		if g, ok := reg.(prometheus.Gatherer); ok {
			opts.Gatherer = g
		} else {
			opts.Gatherer = prometheus.DefaultGatherer
		}
	}
	if opts.DurationBuckets == nil {
		opts.DurationBuckets = DefaultDurationBuckets
	}
	if opts.SizeBuckets == nil {
		opts.SizeBuckets = DefaultSizeBuckets
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := &Metrics{
		log:      opts.Logger.With("component", "metrics"),
		gatherer: opts.Gatherer,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flexgw_requests_total",
			Help: "Requests served, by API, route, normalised method and status class (none = no response sent).",
		}, []string{"api", "route", "method", "code_class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flexgw_request_duration_seconds",
			Help:    "Total request time from first byte received to last byte sent.",
			Buckets: opts.DurationBuckets,
		}, []string{"api", "route"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flexgw_upstream_duration_seconds",
			Help:    "Time from the upstream request start to its response headers.",
			Buckets: opts.DurationBuckets,
		}, []string{"api", "route", "service"}),
		overhead: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flexgw_gateway_overhead_seconds",
			Help:    "Time spent in the gateway itself: total request time minus upstream time.",
			Buckets: opts.DurationBuckets,
		}, []string{"api"}),
		reqSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flexgw_request_size_bytes",
			Help:    "Request bytes received from the client (headers and body).",
			Buckets: opts.SizeBuckets,
		}, []string{"api"}),
		respSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flexgw_response_size_bytes",
			Help:    "Response bytes sent to the client (headers and body).",
			Buckets: opts.SizeBuckets,
		}, []string{"api"}),
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flexgw_active_connections",
			Help: "Open downstream connections per listener.",
		}, []string{"listener"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flexgw_upstream_endpoint_healthy",
			Help: "1 when the upstream endpoint is healthy (active check and passive ejection), 0 when not.",
		}, []string{"service", "endpoint"}),
		policies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flexgw_policy_decisions_total",
			Help: "Policy decisions by API, policy and outcome (the policy that decided each request).",
		}, []string{"api", "policy", "outcome"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flexgw_config_reloads_total",
			Help: "Configuration reloads by result (success, failure).",
		}, []string{"result"}),
		lastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flexgw_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful configuration reload.",
		}),
		snapshotInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flexgw_snapshot_info",
			Help: "Always 1; the version label is the IR snapshot version being served.",
		}, []string{"version"}),
	}
	cs := []prometheus.Collector{
		m.requests, m.duration, m.upstream, m.overhead, m.reqSize, m.respSize,
		m.conns, m.healthy, m.policies, m.reloads, m.lastReloadOK, m.snapshotInfo,
	}
	if !opts.NoRuntimeCollectors {
		cs = append(cs,
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		)
	}
	reg.MustRegister(cs...)
	// Both results exist from the start so rate() and alerts on failures
	// see a zero, not an absent series, before the first failure.
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	return m
}

// Handler serves the gathered metrics for the admin API's /metrics. It
// negotiates OpenMetrics (which carries the exemplars) when the scraper's
// Accept header asks for it, and the Prometheus text format otherwise.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorLog:          slogErrorLog{m.log},
	})
}

type slogErrorLog struct{ l *slog.Logger }

func (s slogErrorLog) Println(v ...any) { s.l.Error("serving metrics", "error", v) }

// Hooks returns the data-plane hooks that feed these metrics. Compose them
// with tracing's hooks using telemetry.Combine, tracing first, so the
// exemplars find the request's span in the context.
func (m *Metrics) Hooks() observe.Hooks {
	return observe.Hooks{
		Request:        m.request,
		Conn:           m.conn,
		EndpointHealth: m.endpointHealth,
	}
}

func (m *Metrics) request(ctx context.Context, info observe.RequestInfo) (context.Context, observe.RequestDone) {
	ro := m.route(info.API, info.Route)
	mi := methodIndex(info.Method)
	// Only a sampled span is worth an exemplar: an unsampled trace id
	// links to a trace the backend never received.
	var traceID trace.TraceID
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		traceID = sc.TraceID()
	}
	return ctx, func(rec *accesslog.Record, t observe.Timings) {
		var exemplar prometheus.Labels
		if traceID.IsValid() {
			exemplar = prometheus.Labels{"trace_id": traceID.String()}
		}
		m.observe(ro, mi, exemplar, rec, t)
	}
}

// observe records one finished request on the observers of its route. It
// is the one code path behind both the request hook (built-in data plane)
// and ObserveRecord (Envoy's access log), so the two cannot drift apart.
func (m *Metrics) observe(ro *routeObs, mi int, exemplar prometheus.Labels, rec *accesslog.Record, t observe.Timings) {
	ci := classIndex(rec.ResponseCode)
	ref := ro.requests[mi][ci].Load()
	if ref == nil {
		ref = &counterRef{m.requests.WithLabelValues(ro.api, ro.route, methods[mi], classes[ci])}
		// Losing this race just stores an equal child twice.
		ro.requests[mi][ci].Store(ref)
	}
	ref.c.Inc()

	observeWithExemplar(ro.duration, t.Total.Seconds(), exemplar)
	if t.Service != "" && (t.Upstream > 0 || rec.UpstreamHost != "") {
		svc := t.Service
		up := ro.upstream.get(svc, func() prometheus.Observer {
			return m.upstream.WithLabelValues(ro.api, ro.route, svc)
		})
		observeWithExemplar(up, t.Upstream.Seconds(), exemplar)
	}
	overhead := t.Total - t.Upstream
	if overhead < 0 {
		overhead = 0
	}
	observeWithExemplar(ro.apiObs.overhead, overhead.Seconds(), exemplar)
	ro.apiObs.reqSize.Observe(float64(t.RequestBytes))
	ro.apiObs.respSize.Observe(float64(t.ResponseBytes))
	if rec.Policy != "" {
		m.policyDecision(ro.apiObs, ro.api, rec.Policy, rec.PolicyOutcome)
	}
}

func observeWithExemplar(o prometheus.Observer, v float64, exemplar prometheus.Labels) {
	if exemplar != nil {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(v, exemplar)
			return
		}
	}
	o.Observe(v)
}

// route returns the cached observers of (api, route).
func (m *Metrics) route(api, route string) *routeObs {
	if api == "" {
		api = Unmatched
	}
	if route == "" {
		route = Unmatched
	}
	return m.routes.get(routeKey{api, route}, func() *routeObs {
		return &routeObs{
			api:      api,
			route:    route,
			apiObs:   m.api(api),
			duration: m.duration.WithLabelValues(api, route),
		}
	})
}

func (m *Metrics) api(api string) *apiObs {
	return m.apis.get(api, func() *apiObs {
		return &apiObs{
			overhead: m.overhead.WithLabelValues(api),
			reqSize:  m.reqSize.WithLabelValues(api),
			respSize: m.respSize.WithLabelValues(api),
		}
	})
}

// PolicyDecision counts one decision of a policy on a request of api. The
// request hook calls it from the access-log record's Policy and
// PolicyOutcome; Envoy's ext_authz/ext_proc path may call it directly.
func (m *Metrics) PolicyDecision(api, policy, outcome string) {
	if api == "" {
		api = Unmatched
	}
	m.policyDecision(m.api(api), api, policy, outcome)
}

func (m *Metrics) policyDecision(ao *apiObs, api, policy, outcome string) {
	if outcome == "" {
		outcome = "unknown"
	}
	c := ao.policies.get([2]string{policy, outcome}, func() prometheus.Counter {
		return m.policies.WithLabelValues(api, policy, outcome)
	})
	c.Inc()
}

func (m *Metrics) conn(listener string, delta int) {
	g := m.listeners.get(listener, func() prometheus.Gauge {
		return m.conns.WithLabelValues(listener)
	})
	g.Add(float64(delta))
}

func (m *Metrics) endpointHealth(service, endpoint string, healthy bool) {
	v := 0.0
	if healthy {
		v = 1
	}
	m.healthy.WithLabelValues(service, endpoint).Set(v)
}

// ReloadResult records the outcome of a configuration reload. On success
// version is the snapshot now served and at the time it took effect.
func (m *Metrics) ReloadResult(ok bool, version uint64, at time.Time) {
	if !ok {
		m.reloads.WithLabelValues("failure").Inc()
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.lastReloadOK.Set(float64(at.UnixNano()) / 1e9)
	if old := m.snapshotVersion.Swap(version); old != version {
		m.snapshotInfo.Reset()
	}
	m.snapshotInfo.WithLabelValues(strconv.FormatUint(version, 10)).Set(1)
}

// Prune drops the series of APIs, routes and endpoints that snap no longer
// has, so a removed API stops being exported instead of showing stale
// counters forever. An API label is kept when it equals an API's name or
// its namespace/name key (either may be what the data plane reports).
// Requests still in flight for a pruned API are not counted.
func (m *Metrics) Prune(snap *ir.Snapshot) {
	keepAPI := map[string]bool{Unmatched: true}
	keepRoute := map[routeKey]bool{}
	for _, a := range snap.APIs() {
		for _, name := range []string{a.Name, a.Key()} {
			keepAPI[name] = true
			keepRoute[routeKey{name, Unmatched}] = true
			for _, r := range a.Routes {
				keepRoute[routeKey{name, r.Name}] = true
			}
		}
	}
	removedRoutes := m.routes.deleteIf(func(k routeKey, _ *routeObs) bool {
		return !keepAPI[k.api] || (k.api != Unmatched && !keepRoute[k])
	})
	for k := range removedRoutes {
		l := prometheus.Labels{"api": k.api, "route": k.route}
		m.requests.DeletePartialMatch(l)
		m.duration.DeletePartialMatch(l)
		m.upstream.DeletePartialMatch(l)
	}
	removedAPIs := m.apis.deleteIf(func(api string, _ *apiObs) bool { return !keepAPI[api] })
	for api := range removedAPIs {
		l := prometheus.Labels{"api": api}
		m.overhead.DeletePartialMatch(l)
		m.reqSize.DeletePartialMatch(l)
		m.respSize.DeletePartialMatch(l)
		m.policies.DeletePartialMatch(l)
	}
	// Endpoint health series are few and set, not cached: rebuild the set
	// from the snapshot's endpoints by deleting anything unknown.
	keepEP := map[[2]string]bool{}
	for _, s := range snap.Services {
		for _, e := range s.Endpoints {
			keepEP[[2]string{s.Key(), e.Address()}] = true
			keepEP[[2]string{s.Name, e.Address()}] = true
		}
	}
	ch := make(chan prometheus.Metric, 64)
	go func() { m.healthy.Collect(ch); close(ch) }()
	var stale [][2]string
	for metric := range ch {
		var svc, ep string
		pb := dtoMetric(metric)
		for _, lp := range pb {
			switch lp[0] {
			case "service":
				svc = lp[1]
			case "endpoint":
				ep = lp[1]
			}
		}
		if !keepEP[[2]string{svc, ep}] {
			stale = append(stale, [2]string{svc, ep})
		}
	}
	for _, s := range stale {
		m.healthy.DeleteLabelValues(s[0], s[1])
	}
	if n := len(removedRoutes) + len(stale); n > 0 {
		m.log.Info("pruned metric series of removed config", "routes", len(removedRoutes), "apis", len(removedAPIs), "endpoints", len(stale), "version", snap.Version)
	}
}
