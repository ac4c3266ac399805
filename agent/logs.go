package agent

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/logpipe"
	"github.com/flexgw/flexgw/logpipe/logmetrics"
)

// startLogPipeline runs the in-process log pipeline (decode, enrich,
// redact, batch, durable queue, exporters) that receives every access-log
// record of the built-in data plane and the agent's own runtime logs.
func (a *Agent) startLogPipeline(ctx context.Context, first *ir.Snapshot) (stopFunc, error) {
	host, _ := os.Hostname()
	p, err := logpipe.New(first.Logging, logpipe.Options{
		GatewayID: a.opts.GatewayID,
		Hostname:  host,
		QueueDir:  filepath.Join(a.opts.StateDir, "queue"),
		Logger:    a.opts.Logger,
		Labels:    a.opts.LogLabels,
		Redact:    a.opts.LogRedact,
		Sample:    a.opts.LogSample,
	})
	if err != nil {
		return nil, err
	}
	if err := p.Start(ctx); err != nil {
		_ = p.Close(ctx)
		return nil, err
	}
	a.pipeline = p
	// Runtime logs from here on also reach the configured runtime outputs.
	a.opts.Logger = slog.New(p.RuntimeHandler(a.opts.Logger.Handler()))
	a.log = a.opts.Logger.With("component", "agent")
	a.registry.MustRegister(logmetrics.New(p))
	a.appliers = append(a.appliers, func(s *ir.Snapshot) error { return p.Apply(s.Logging) })
	a.adminExtra["GET /api/v1/logpipe"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, p.Stats())
	})
	a.statusExtra["logpipe"] = func() any { return p.Stats() }
	// Closed after the data plane drained (runners close in reverse), so
	// the last records are queued before the pipeline flushes.
	return p.Close, nil
}
