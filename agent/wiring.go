package agent

import (
	"context"
	"fmt"
	"os/exec"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/dataplane"
	"github.com/flexgw/flexgw/ir"
)

// chooseDataPlane resolves --dataplane auto into builtin or envoy and says why.
func (a *Agent) chooseDataPlane() (name, why string, err error) {
	switch a.opts.DataPlane {
	case "builtin":
		return "builtin", "--dataplane builtin", nil
	case "envoy", "xds":
		return "", "", fmt.Errorf("--dataplane %s: not available in this build yet; use builtin", a.opts.DataPlane)
	case "auto":
		if a.opts.EnvoyPath != "" {
			return "", "", fmt.Errorf("--envoy-path %s: the Envoy data plane is not available in this build yet", a.opts.EnvoyPath)
		}
		if p, err := exec.LookPath("envoy"); err == nil {
			return "builtin", "envoy found at " + p + " but the Envoy data plane is not available in this build yet", nil
		}
		return "builtin", "no envoy binary on PATH", nil
	default:
		return "", "", fmt.Errorf("--dataplane %q: must be auto, builtin, envoy or xds", a.opts.DataPlane)
	}
}

func (a *Agent) setupDataPlane(ctx context.Context) error {
	name, why, err := a.chooseDataPlane()
	if err != nil {
		return err
	}
	a.dataPlaneName, a.dataPlaneReason = name, why
	a.log.Info("data plane chosen", "dataplane", name, "why", why)

	var sinks []accesslog.Sink
	if a.accessLog != nil {
		sinks = append(sinks, a.accessLog)
	}
	if a.pipeline != nil {
		sinks = append(sinks, a.pipeline)
	}
	a.dp = dataplane.New(dataplane.Options{
		GatewayID: a.opts.GatewayID,
		Logger:    a.opts.Logger.With("component", "dataplane"),
		AccessLog: accesslog.MultiSink(sinks...),
		Shared:    a.shared,
	})
	return nil
}

// setupComponents starts the optional parts that depend on the first
// snapshot (log pipeline, telemetry, kernel probe).
func (a *Agent) setupComponents(ctx context.Context, first *ir.Snapshot) error {
	return nil
}
