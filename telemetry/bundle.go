package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/observe"
	"github.com/flexgw/flexgw/telemetry/metrics"
	"github.com/flexgw/flexgw/telemetry/tracing"
)

// Telemetry is metrics and tracing wired the way the agent needs them:
// one value created at start-up, its Hooks given to the data plane once,
// Apply called with every accepted snapshot and ReloadFailed with every
// rejected one.
type Telemetry struct {
	Metrics *metrics.Metrics
	Tracer  *tracing.Tracer
	log     *slog.Logger
}

// New registers the metrics with reg (nil: a fresh registry) and creates
// the tracer, off until a snapshot turns it on.
func New(reg prometheus.Registerer, logger *slog.Logger) *Telemetry {
	if logger == nil {
		logger = slog.Default()
	}
	return &Telemetry{
		Metrics: metrics.New(reg, metrics.Options{Logger: logger}),
		Tracer:  tracing.New(tracing.Options{Logger: logger}),
		log:     logger.With("component", "telemetry"),
	}
}

// Hooks returns the hooks for dataplane.Options.Hooks: tracing (installed
// for good, so a reload can turn it on; one atomic load per request while
// off) then metrics, plus any extra observers (the `flexgw top` stats).
func (t *Telemetry) Hooks(extra ...observe.Hooks) observe.Hooks {
	return Combine(append([]observe.Hooks{t.Tracer.ReloadableHooks(), t.Metrics.Hooks()}, extra...)...)
}

// Handler serves /metrics.
func (t *Telemetry) Handler() http.Handler { return t.Metrics.Handler() }

// Apply follows an accepted snapshot: it reconfigures tracing, drops the
// series of removed APIs, routes and endpoints, and records the reload.
// A tracing error (e.g. an unsupported provider) leaves the previous
// tracing setup running and is returned for the agent to log; the rest of
// the snapshot is unaffected.
func (t *Telemetry) Apply(ctx context.Context, snap *ir.Snapshot) error {
	t.Metrics.Prune(snap)
	t.Metrics.ReloadResult(true, snap.Version, time.Now())
	if err := t.Tracer.ConfigureSnapshot(ctx, snap); err != nil {
		return fmt.Errorf("telemetry: snapshot %d: %w", snap.Version, err)
	}
	return nil
}

// ReloadFailed records a rejected configuration change.
func (t *Telemetry) ReloadFailed() { t.Metrics.ReloadResult(false, 0, time.Now()) }

// Shutdown flushes pending spans.
func (t *Telemetry) Shutdown(ctx context.Context) error { return t.Tracer.Shutdown(ctx) }
