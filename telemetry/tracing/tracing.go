// Package tracing is flexgw's OpenTelemetry tracing: from the IR's
// Configuration.spec.tracing it builds a TracerProvider that exports over
// OTLP (gRPC or HTTP) through a batch span processor, and it observes the
// data plane through observe.Hooks — a server span per request (parent
// taken from the inbound W3C traceparent/tracestate and baggage) and a
// client span per upstream attempt (propagated upstream in the same
// headers). The request's trace id goes into the access-log record.
//
// Tracing is off by default. While off, Hooks returns no hooks, so the
// request path pays nothing.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/observe"
)

// ProviderOpenTelemetry is the only provider type flexgw exports to.
// Flex's "anypoint" provider needs Anypoint Monitoring (Connected Mode).
const ProviderOpenTelemetry = "opentelemetry"

// DefaultServiceName is the service.name resource attribute when
// provider.properties.serviceName is unset.
const DefaultServiceName = "flexgw"

// resourceAttrPrefix marks provider properties that become resource
// attributes ("resourceAttributes.deployment.environment: prod"). Flex
// writes them as a nested `resourceAttributes:` map, which the config
// loader is to flatten into this form.
const resourceAttrPrefix = "resourceAttributes."

const shutdownTimeout = 5 * time.Second

// Options tunes New.
type Options struct {
	Logger *slog.Logger
	// BatchTimeout is the batch span processor's export delay; 0 keeps the
	// OpenTelemetry default (5 s).
	BatchTimeout time.Duration
}

// Tracer owns the current tracing setup and swaps it on reload. One Tracer
// lives for the life of the process; it is safe for concurrent use.
type Tracer struct {
	log  *slog.Logger
	opts Options

	mu  sync.Mutex // serialises Configure and Shutdown
	cur atomic.Pointer[setup]
}

// setup is one configuration's provider; immutable once published.
type setup struct {
	cfg ir.Tracing // Source cleared, for change detection
	// overrides are the routes' tracing-flex settings, for change detection.
	overrides map[RouteKey]ir.TracingOverride
	// routes hold what tracing-flex changes for a route's requests.
	routes   map[RouteKey]*routeSetup
	endpoint Endpoint
	tp       *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	sampler  *flexSampler
	// static holds the literal and environment labels, resolved once.
	static []attribute.KeyValue
	// headerLabels are read from each request.
	headerLabels []ir.TracingLabel
}

// RouteKey names a route as the data plane reports it (RequestInfo.API,
// RequestInfo.Route).
type RouteKey struct{ API, Route string }

// routeSetup is one route's tracing-flex override, resolved: its own
// sampler, the global labels merged with its own, and its span name.
type routeSetup struct {
	sampler      *flexSampler
	static       []attribute.KeyValue
	headerLabels []ir.TracingLabel
	spanName     string
}

// Overrides collects the tracing-flex override of every route of snap.
func Overrides(snap *ir.Snapshot) map[RouteKey]ir.TracingOverride {
	var out map[RouteKey]ir.TracingOverride
	for _, a := range snap.APIs() {
		for _, r := range a.Routes {
			if r.Tracing == nil {
				continue
			}
			if out == nil {
				out = map[RouteKey]ir.TracingOverride{}
			}
			out[RouteKey{API: a.Key(), Route: r.Name}] = *r.Tracing
		}
	}
	return out
}

// New returns a Tracer with tracing off. It points OpenTelemetry's global
// error handler at opts.Logger (one Tracer per process is expected).
func New(opts Options) *Tracer {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	log := opts.Logger.With("component", "tracing")
	// Export failures surface through OpenTelemetry's global error
	// handler; send them to the runtime log rather than the std logger.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("exporting spans", "error", err)
	}))
	return &Tracer{log: log, opts: opts}
}

// Enabled reports whether tracing is on.
func (t *Tracer) Enabled() bool { return t.cur.Load() != nil }

// Configure applies a snapshot's tracing configuration; nil turns tracing
// off. An unchanged configuration is a no-op. On change the new provider
// is published first and the old one is flushed and shut down in the
// background, so a reload never blocks on the collector. On error the
// previous setup keeps running.
func (t *Tracer) Configure(ctx context.Context, cfg *ir.Tracing) error {
	return t.configure(ctx, cfg, nil)
}

// ConfigureSnapshot is Configure with the snapshot's spec.tracing and the
// tracing-flex overrides Shape put on its routes.
func (t *Tracer) ConfigureSnapshot(ctx context.Context, snap *ir.Snapshot) error {
	return t.configure(ctx, snap.Tracing, Overrides(snap))
}

func (t *Tracer) configure(ctx context.Context, cfg *ir.Tracing, overrides map[RouteKey]ir.TracingOverride) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.cur.Load()
	if cfg == nil {
		if old != nil {
			t.cur.Store(nil)
			t.retire(old)
			t.log.Info("tracing off")
		}
		return nil
	}
	norm := *cfg
	norm.Source = ir.Source{}
	if old != nil && reflect.DeepEqual(old.cfg, norm) && reflect.DeepEqual(old.overrides, overrides) {
		return nil
	}
	if _, err := validate(cfg); err != nil {
		return err
	}
	if !cfg.Exports() {
		// Flex's anypoint provider without a collector: nothing leaves the
		// gateway, so tracing stays off (the status explains why).
		if old != nil {
			t.cur.Store(nil)
			t.retire(old)
		}
		t.log.Warn("tracing not exported", "reason", cfg.Explain())
		return nil
	}
	s, err := t.build(ctx, cfg, overrides)
	if err != nil {
		return err
	}
	s.cfg = norm
	s.overrides = overrides
	t.cur.Store(s)
	if old != nil {
		t.retire(old)
	}
	t.log.Info("tracing on", "endpoint", s.endpoint.String(),
		"sampling_client", cfg.Sampling.Client, "sampling_random", cfg.Sampling.Random, "sampling_overall", cfg.Sampling.Overall)
	return nil
}

// Validate checks a tracing configuration without connecting anywhere,
// for `flexgw validate` and for rejecting a reload before it is applied.
// Errors name the file, line and field.
func Validate(cfg *ir.Tracing) error {
	if cfg == nil {
		return nil
	}
	_, err := validate(cfg)
	return err
}

func validate(cfg *ir.Tracing) (Endpoint, error) {
	switch pt := strings.ToLower(cfg.Provider.Type); {
	case pt == ir.TracingAnypoint && !cfg.Exports():
		return Endpoint{}, nil // accepted; nothing to export to (see ir.Tracing.Explain)
	case pt != ProviderOpenTelemetry && pt != ir.TracingAnypoint:
		return Endpoint{}, fmt.Errorf("%s: spec.tracing.provider.type %q: not supported (expected %q, or %q with provider.properties.address naming an OTLP collector)", cfg.Source, cfg.Provider.Type, ProviderOpenTelemetry, ir.TracingAnypoint)
	}
	return ParseEndpoint(cfg)
}

func (t *Tracer) build(ctx context.Context, cfg *ir.Tracing, overrides map[RouteKey]ir.TracingOverride) (*setup, error) {
	ep, err := validate(cfg)
	if err != nil {
		return nil, err
	}
	exp, err := newExporter(ctx, ep)
	if err != nil {
		return nil, fmt.Errorf("%s: spec.tracing.provider: creating the OTLP exporter for %s: %w", cfg.Source, ep, err)
	}
	serviceName := cfg.Provider.Properties["serviceName"]
	if serviceName == "" {
		serviceName = DefaultServiceName
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", serviceName)}
	keys := make([]string, 0, len(cfg.Provider.Properties))
	for k := range cfg.Provider.Properties {
		if strings.HasPrefix(k, resourceAttrPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		attrs = append(attrs, attribute.String(strings.TrimPrefix(k, resourceAttrPrefix), cfg.Provider.Properties[k]))
	}
	var bopts []sdktrace.BatchSpanProcessorOption
	if t.opts.BatchTimeout > 0 {
		bopts = append(bopts, sdktrace.WithBatchTimeout(t.opts.BatchTimeout))
	}
	sampler := newFlexSampler(cfg.Sampling)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, bopts...),
		sdktrace.WithSampler(sampler),
		sdktrace.WithIDGenerator(idGenerator{}),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
	)
	s := &setup{
		endpoint: ep,
		tp:       tp,
		sampler:  sampler,
		tracer:   tp.Tracer("github.com/flexgw/flexgw/telemetry/tracing"),
		prop:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	s.static, s.headerLabels = resolveLabels(cfg.Labels)
	for k, o := range overrides {
		if s.routes == nil {
			s.routes = map[RouteKey]*routeSetup{}
		}
		// A route label replaces the global label of the same name (as
		// Envoy merges route-level custom tags over the manager's).
		merged := make([]ir.TracingLabel, 0, len(cfg.Labels)+len(o.Labels))
		mine := map[string]bool{}
		for _, l := range o.Labels {
			mine[l.Name] = true
		}
		for _, l := range cfg.Labels {
			if !mine[l.Name] {
				merged = append(merged, l)
			}
		}
		merged = append(merged, o.Labels...)
		rs := &routeSetup{sampler: newFlexSampler(o.Sampling), spanName: o.SpanName}
		rs.static, rs.headerLabels = resolveLabels(merged)
		s.routes[k] = rs
	}
	return s, nil
}

// resolveLabels reads literal and environment labels once; header labels
// are read from each request.
func resolveLabels(labels []ir.TracingLabel) (static []attribute.KeyValue, header []ir.TracingLabel) {
	for _, l := range labels {
		switch l.Type {
		case "literal":
			v := l.Value
			if v == "" {
				v = l.DefaultValue
			}
			static = append(static, attribute.String(l.Name, v))
		case "environment":
			v, ok := os.LookupEnv(l.Key)
			if !ok {
				v = l.DefaultValue
			}
			static = append(static, attribute.String(l.Name, v))
		case "requestHeader":
			header = append(header, l)
		}
	}
	return static, header
}

// retire flushes and stops an old provider without blocking the caller.
func (t *Tracer) retire(s *setup) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := s.tp.Shutdown(ctx); err != nil {
			t.log.Warn("flushing spans of the previous tracing config", "endpoint", s.endpoint.String(), "error", err)
		}
	}()
}

// Flush exports every finished span now (for shutdown and tests).
func (t *Tracer) Flush(ctx context.Context) error {
	if s := t.cur.Load(); s != nil {
		return s.tp.ForceFlush(ctx)
	}
	return nil
}

// Shutdown flushes pending spans and turns tracing off.
func (t *Tracer) Shutdown(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.cur.Swap(nil)
	if s == nil {
		return nil
	}
	if err := s.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutting down the exporter to %s: %w", s.endpoint, err)
	}
	return nil
}

// Hooks returns the data-plane hooks that trace requests, or no hooks at
// all while tracing is off: use it where the hooks are rebuilt after each
// Configure. Hooks obtained while tracing was on become no-ops (one
// atomic load) if it is later turned off.
func (t *Tracer) Hooks() observe.Hooks {
	if !t.Enabled() {
		return observe.Hooks{}
	}
	return t.ReloadableHooks()
}

// ReloadableHooks returns hooks that stay installed for the life of the
// data plane and follow every later Configure; while tracing is off each
// call costs one atomic load. Use them where the data plane takes its
// hooks once (dataplane.Options.Hooks) and a reload may turn tracing on.
func (t *Tracer) ReloadableHooks() observe.Hooks {
	return observe.Hooks{Request: t.request, UpstreamAttempt: t.attempt}
}

func noopDone(*accesslog.Record, observe.Timings) {}
func noopAttempt(int, error)                      {}

// headerGetter adapts RequestInfo.Header to a propagation carrier.
type headerGetter func(string) string

func (h headerGetter) Get(key string) string {
	if h == nil {
		return ""
	}
	return h(key)
}
func (headerGetter) Set(string, string) {}
func (headerGetter) Keys() []string     { return nil }

// headerSetter adapts the attempt's set function to a propagation carrier.
type headerSetter func(string, string)

func (headerSetter) Get(string) string       { return "" }
func (h headerSetter) Set(key, value string) { h(key, value) }
func (headerSetter) Keys() []string          { return nil }

func (t *Tracer) request(ctx context.Context, info observe.RequestInfo) (context.Context, observe.RequestDone) {
	s := t.cur.Load()
	if s == nil {
		return ctx, noopDone
	}
	// Canonical header names: http.Header.Get allocates to canonicalise
	// any other spelling.
	hdr := headerGetter(info.Header)
	if hdr.Get("Traceparent") != "" || hdr.Get("Baggage") != "" {
		ctx = s.prop.Extract(ctx, hdr)
	}
	// Most requests are not sampled. They are decided here, before the
	// SDK: no span object, no attributes, just a trace context that is
	// propagated upstream and logged — a few hundred nanoseconds.
	parent := trace.SpanContextFromContext(ctx)
	sampler, static, headerLabels, spanName := s.sampler, s.static, s.headerLabels, ""
	if s.routes != nil {
		if rs := s.routes[RouteKey{API: info.API, Route: info.Route}]; rs != nil {
			sampler, static, headerLabels, spanName = rs.sampler, rs.static, rs.headerLabels, rs.spanName
		}
	}
	switch {
	case parent.IsValid() && !parent.IsSampled():
		// The caller decided not to trace: pass its context through.
		return ctx, traceIDDone(parent.TraceID())
	case !parent.IsValid():
		tid := newTraceID()
		if !sampler.sampleRoot(tid, hdr.Get(ClientTraceHeader) != "") {
			u := &unsampled{Context: ctx, traceparent: formatTraceparent(tid, newSpanID(), false)}
			return u, u.done
		}
		// Decided here (with the route's sampler when tracing-flex set
		// one): the SDK's sampler keeps the decision.
		ctx = context.WithValue(ctx, presetTraceIDKey{}, tid)
	}
	if hdr.Get(ClientTraceHeader) != "" {
		ctx = withClientTrace(ctx)
	}
	if spanName == "" {
		spanName = info.Method + " " + info.API + " " + info.Route
	}
	ctx, span := s.tracer.Start(ctx, spanName, trace.WithSpanKind(trace.SpanKindServer))
	attrs := make([]attribute.KeyValue, 0, 4+len(static)+len(headerLabels))
	attrs = append(attrs,
		attribute.String("http.request.method", info.Method),
		attribute.String("flexgw.listener", info.Listener),
		attribute.String("flexgw.api", info.API),
		attribute.String("flexgw.route", info.Route),
	)
	attrs = append(attrs, static...)
	for _, l := range headerLabels {
		v := requestHeader(info, l.Key)
		if v == "" {
			v = l.DefaultValue
		}
		attrs = append(attrs, attribute.String(l.Name, v))
	}
	span.SetAttributes(attrs...)
	return ctx, func(rec *accesslog.Record, _ observe.Timings) {
		if sc := span.SpanContext(); sc.IsValid() {
			rec.TraceID = sc.TraceID().String()
		}
		if span.IsRecording() {
			span.SetAttributes(
				attribute.Int("http.response.status_code", rec.ResponseCode),
				attribute.String("url.path", rec.Path),
			)
			if rec.RequestID != "" {
				span.SetAttributes(attribute.String("flexgw.request_id", rec.RequestID))
			}
			if rec.Policy != "" {
				span.SetAttributes(attribute.String("flexgw.policy", rec.Policy), attribute.String("flexgw.policy_outcome", rec.PolicyOutcome))
			}
			if rec.ResponseCode >= 500 || rec.ResponseCode == 0 {
				span.SetStatus(codes.Error, responseStatus(rec))
			}
		}
		span.End()
	}
}

// unsampled is the context of a root request tracing decided not to
// sample. It carries the request's trace context — no SDK span — as the
// traceparent sent upstream, formatted once for every attempt; the access
// log's trace_id is a slice of it. trace.SpanContextFromContext does not
// see it: only sampled requests have a span in the context.
type unsampled struct {
	context.Context
	traceparent string
}

type unsampledKey struct{}

// Value answers unsampledKey and defers everything else to the parent.
func (u *unsampled) Value(k any) any {
	if _, ok := k.(unsampledKey); ok {
		return u
	}
	return u.Context.Value(k)
}

func (u *unsampled) done(rec *accesslog.Record, _ observe.Timings) {
	rec.TraceID = u.traceparent[3:35]
}

// traceIDDone logs the trace id of an unsampled request.
func traceIDDone(tid trace.TraceID) func(*accesslog.Record, observe.Timings) {
	return func(rec *accesslog.Record, _ observe.Timings) { rec.TraceID = tid.String() }
}

// requestHeader reads a label's header; Flex's ":method" pseudo-header
// names the request method.
func requestHeader(info observe.RequestInfo, key string) string {
	if key == ":method" {
		return info.Method
	}
	if info.Header == nil {
		return ""
	}
	return info.Header(key)
}

func responseStatus(rec *accesslog.Record) string {
	if rec.ResponseCode == 0 {
		return "no response sent"
	}
	flags := rec.ResponseFlags
	if flags == "" || flags == "-" {
		return strconv.Itoa(rec.ResponseCode)
	}
	return strconv.Itoa(rec.ResponseCode) + " " + flags
}

func (t *Tracer) attempt(ctx context.Context, set func(key, value string), info observe.AttemptInfo) observe.AttemptDone {
	s := t.cur.Load()
	if s == nil {
		return noopAttempt
	}
	if u, ok := ctx.Value(unsampledKey{}).(*unsampled); ok {
		if set != nil {
			set("Traceparent", u.traceparent)
			propagation.Baggage{}.Inject(ctx, headerSetter(set))
		}
		return noopAttempt
	}
	if sc := trace.SpanContextFromContext(ctx); !sc.IsSampled() {
		// Unsampled: propagate the request's context (sampled=0, so the
		// upstream makes no contrary decision) without a client span.
		if sc.IsValid() && set != nil {
			set("Traceparent", traceparent(sc))
			if ts := sc.TraceState().String(); ts != "" {
				set("Tracestate", ts)
			}
			propagation.Baggage{}.Inject(ctx, headerSetter(set))
		}
		return noopAttempt
	}
	ctx, span := s.tracer.Start(ctx, info.Method+" "+info.Service, trace.WithSpanKind(trace.SpanKindClient))
	span.SetAttributes(
		attribute.String("http.request.method", info.Method),
		attribute.String("url.path", info.Path),
		attribute.String("server.address", info.Endpoint),
		attribute.String("flexgw.service", info.Service),
		attribute.String("flexgw.api", info.API),
		attribute.String("flexgw.route", info.Route),
		attribute.Int("http.request.resend_count", info.Attempt),
	)
	if set != nil {
		s.prop.Inject(ctx, headerSetter(set))
	}
	return func(status int, err error) {
		if status > 0 {
			span.SetAttributes(attribute.Int("http.response.status_code", status))
		}
		switch {
		case err != nil:
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		case status >= 500:
			span.SetStatus(codes.Error, strconv.Itoa(status))
		}
		span.End()
	}
}
