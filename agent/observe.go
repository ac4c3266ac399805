package agent

import (
	"context"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/stats"
	"github.com/flexgw/flexgw/stats/topapi"
	"github.com/flexgw/flexgw/telemetry"
	"github.com/flexgw/flexgw/telemetry/metrics"
)

// startTelemetry creates metrics, tracing and the `flexgw top` statistics
// and the hooks the built-in data plane calls on every request (a.hooks).
//
// With Envoy no request passes through the hooks: the statistics and the
// request metrics count the records of Envoy's access log (agent/tail.go),
// and Envoy's own stats supply connections and endpoint health.
func (a *Agent) startTelemetry() (stopFunc, error) {
	envoyMode := a.dataPlaneName != "builtin"
	a.telemetry = telemetry.New(a.registry, a.opts.Logger)
	a.registry.MustRegister(metrics.BuildInfo(a.opts.Version, a.opts.Commit))
	a.stats = stats.New(stats.Options{
		Status:    a.topStatus,
		Snapshot:  a.state.snapshot,
		Endpoints: func() []stats.EndpointHealth { return a.endpointHealth() },
		Kernel:    a.kernelStats,
		Pipeline:  a.pipelineStats,
		// Envoy's requests never pass the hooks; count its records instead.
		CountAccessLog: envoyMode,
		Logger:         a.opts.Logger,
	})
	a.adminExtra["GET /api/v1/top"] = a.stats.Handler()
	a.adminExtra["GET /api/v1/logs/stream"] = a.stats.Handler()
	a.onReload = append(a.onReload, func(ok bool, s *ir.Snapshot) {
		if !ok {
			a.telemetry.ReloadFailed()
			return
		}
		if err := a.telemetry.Apply(context.Background(), s); err != nil {
			a.log.Error("tracing configuration rejected; previous tracing setup keeps running", "error", err)
		}
	})
	// What the tracing configuration does here, with the reason when a
	// Flex setting (provider anypoint) cannot do locally what it says.
	a.statusExtra["tracing"] = func() any {
		s := a.state.snapshot()
		if s == nil || s.Tracing == nil {
			return map[string]any{"enabled": false}
		}
		out := map[string]any{"provider": s.Tracing.Provider.Type, "exporting": s.Tracing.Exports()}
		if s.Tracing.Exports() {
			out["address"] = s.Tracing.Provider.Properties["address"]
		}
		if why := s.Tracing.Explain(); why != "" {
			out["note"] = why
		}
		return out
	}
	a.hooks = a.telemetry.Hooks(a.stats.Hooks())
	return a.telemetry.Shutdown, nil
}

func (a *Agent) endpointHealth() []stats.EndpointHealth {
	if a.builtin == nil {
		return nil
	}
	return stats.DataPlaneEndpoints(a.builtin.Endpoints)()
}

func (a *Agent) topStatus() stats.Status {
	s := a.Status()
	return stats.Status{
		GatewayID:       s.GatewayID,
		Version:         s.Version,
		DataPlane:       s.DataPlane,
		SnapshotVersion: s.SnapshotVersion,
		ReloadOK:        s.LastReload.Result != resultFailure,
		ReloadError:     s.LastReload.Error,
		ReloadAt:        s.LastReload.Time,
	}
}

func (a *Agent) kernelStats() topapi.Kernel {
	if a.probe == nil {
		return topapi.Kernel{Reason: probeOffReason(a.opts.EBPF)}
	}
	snap := a.probe.Snapshot()
	k := topapi.Kernel{Enabled: snap.Enabled, Reason: snap.Error}
	for _, e := range snap.Endpoints {
		ke := topapi.KernelEndpoint{
			Service:      e.Service,
			Endpoint:     e.Endpoint,
			Addresses:    e.Addresses,
			Shared:       e.Shared,
			ResolveError: e.ResolveError,
			Connects:     e.Connects,
			ConnectP50Ms: e.ConnectP50 * 1000,
			ConnectP99Ms: e.ConnectP99 * 1000,
			Failures:     e.Failures,
			RTTP50Ms:     e.RTTP50 * 1000,
		}
		for _, o := range e.SharedWith {
			ke.SharedWith = append(ke.SharedWith, o.Service+" "+o.Endpoint)
		}
		k.Endpoints = append(k.Endpoints, ke)
	}
	return k
}

func (a *Agent) pipelineStats() topapi.Pipeline {
	if a.pipeline == nil {
		return topapi.Pipeline{}
	}
	p := topapi.Pipeline{Mode: "in-process"}
	for _, e := range a.pipeline.Stats() {
		p.Exporters = append(p.Exporters, topapi.Exporter{
			Name:         e.Name,
			Type:         e.Type,
			QueueDepth:   e.QueueDepth,
			Sent:         uint64(e.Sent),
			Retries:      uint64(e.Retried),
			Dropped:      uint64(e.Dropped),
			DeadLettered: uint64(e.DeadLettered),
			LastError:    e.LastError,
			LastErrorAt:  e.LastErrorTime,
		})
	}
	return p
}
