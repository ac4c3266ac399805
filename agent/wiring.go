package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/dataplane"
	"github.com/flexgw/flexgw/envoy"
	"github.com/flexgw/flexgw/envoy/plane"
	"github.com/flexgw/flexgw/envoy/translate"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy/extauthz"
	"github.com/flexgw/flexgw/policy/rls"
)

// dataPlane is what the agent needs of either data plane.
type dataPlane interface {
	Apply(*ir.Snapshot) error
	Shutdown(context.Context) error
}

// chooseDataPlane resolves --dataplane into builtin, envoy or xds and says why.
func (a *Agent) chooseDataPlane() (name, why, envoyPath string, err error) {
	switch a.opts.DataPlane {
	case "builtin":
		return "builtin", "--dataplane builtin", "", nil
	case "xds":
		return "xds", "--dataplane xds: serving ADS for Envoys started elsewhere", "", nil
	case "envoy":
		path, why, ok := envoy.Detect(a.opts.EnvoyPath)
		if !ok {
			return "", "", "", fmt.Errorf("--dataplane envoy: %s", why)
		}
		return "envoy", why, path, nil
	case "auto":
		path, why, ok := envoy.Detect(a.opts.EnvoyPath)
		if ok {
			return "envoy", why, path, nil
		}
		return "builtin", why, "", nil
	default:
		return "", "", "", fmt.Errorf("--dataplane %q: must be auto, builtin, envoy or xds", a.opts.DataPlane)
	}
}

// dataPlaneRunner runs the chosen data plane. It is the one part that
// drains: at shutdown it finishes in-flight requests (or Envoy's
// connections) before any part they use is closed.
type dataPlaneRunner struct {
	a     *Agent
	first *ir.Snapshot
	stop  sync.Once
	err   error
}

var _ drainer = (*dataPlaneRunner)(nil)

func (r *dataPlaneRunner) Name() string { return "data plane" }

// Start starts the data plane on a context SIGTERM does not cancel: its
// parts (ADS with the rate-limit and ext_authz services Envoy calls, the
// log followers) must outlive the signal until Drain has let Envoy finish
// its in-flight requests.
func (r *dataPlaneRunner) Start(ctx context.Context) error {
	return r.a.startDataPlane(context.WithoutCancel(ctx), r.first)
}

// Drain shuts the data plane down within ctx: listeners stop accepting,
// requests in flight complete (Envoy: drain_listeners, then SIGTERM).
func (r *dataPlaneRunner) Drain(ctx context.Context) error {
	r.stop.Do(func() {
		if r.a.plane != nil {
			r.err = r.a.plane.Shutdown(ctx)
		}
		if r.a.stopLogFollowers != nil {
			r.a.stopLogFollowers()
		}
	})
	return r.err
}

// Close is a no-op after Drain; after a start-up failure further down the
// list (the admin port taken, the first snapshot rejected) it stops ADS and
// Envoy.
func (r *dataPlaneRunner) Close(ctx context.Context) error { return r.Drain(ctx) }

// startDataPlane builds the data plane chosen in run: the built-in one, or
// the ADS server with (in envoy mode) the supervised Envoy.
func (a *Agent) startDataPlane(ctx context.Context, first *ir.Snapshot) error {
	name := a.dataPlaneName
	a.log.Info("data plane chosen", "dataplane", name, "why", a.dataPlaneReason)

	var sinks []accesslog.Sink
	if a.accessLog != nil && name == "builtin" {
		sinks = append(sinks, a.accessLog)
	}
	if a.pipeline != nil {
		sinks = append(sinks, a.pipeline)
	}
	sinks = append(sinks, a.stats)

	if name == "builtin" {
		a.builtin = dataplane.New(dataplane.Options{
			GatewayID: a.opts.GatewayID,
			Logger:    a.opts.Logger.With("component", "dataplane"),
			AccessLog: accesslog.MultiSink(sinks...),
			Shared:    a.shared,
			Hooks:     a.hooks,

			EscapedSlashes: a.opts.EscapedSlashes,
		})
		a.plane = a.builtin
		return nil
	}
	return a.setupEnvoy(ctx, first, name, a.envoyPath)
}

// setupEnvoy starts the ADS server (and in envoy mode the supervised
// Envoy). The policy services Envoy calls back into, rate limiting and
// ext_authz, are served on the same gRPC address.
func (a *Agent) setupEnvoy(ctx context.Context, first *ir.Snapshot, mode, envoyPath string) error {
	log := a.opts.Logger
	rlsSrv := rls.New(a.shared, log)
	authz := extauthz.New(a.shared, log)
	authz.OnDecision = func(api, pol, outcome string) {
		a.telemetry.Metrics.PolicyDecision(api, pol, outcome)
	}
	accessLogPath := ""
	if a.opts.AccessLog != "-" && a.opts.AccessLog != "off" {
		accessLogPath = a.opts.AccessLog
	}
	p, err := plane.New(plane.Options{
		Mode:       mode,
		XDSAddress: a.opts.XDSAddress,
		EnvoyPath:  envoyPath,
		Bootstrap:  envoy.BootstrapOptions{NodeID: a.opts.GatewayID, XDSAddress: a.opts.XDSAddress, AdminAddress: a.opts.EnvoyAdmin},
		Translate:  translate.Options{GatewayID: a.opts.GatewayID, AccessLogPath: accessLogPath, EscapedSlashes: a.opts.EscapedSlashes},
		Logger:     log,
		Register:   []func(*grpc.Server){rlsSrv.Register, authz.Register},
	})
	if err != nil {
		return err
	}
	if accessLogPath != "" && mode == "envoy" {
		// Fluent Bit, where installed with our plugin, ships Envoy's access
		// log; the agent still tails it for metrics and `flexgw top`.
		// Started before Envoy so no line it writes is missed, and stopped
		// only after Envoy exited (stopLogFollowers) so the lines of the
		// requests it finished while draining are read too.
		followCtx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		a.shipWithFluentBit = a.startFluentBit(followCtx, first, accessLogPath, &wg)
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.tailAccessLog(followCtx, accessLogPath, 250*time.Millisecond)
		}()
		a.stopLogFollowers = func() { stop(); wg.Wait() }
	}
	if err := p.Start(ctx); err != nil {
		if a.stopLogFollowers != nil {
			a.stopLogFollowers()
		}
		return fmt.Errorf("%s data plane: %w", mode, err)
	}
	for _, c := range p.Collectors() {
		if err := a.registry.Register(c); err != nil {
			// Only a started part is closed: undo this one's start here.
			_ = p.Shutdown(ctx)
			if a.stopLogFollowers != nil {
				a.stopLogFollowers()
			}
			return fmt.Errorf("envoy metrics: %w", err)
		}
	}
	a.envoyPlane = p
	a.plane = p
	a.appliers = append(a.appliers, func(s *ir.Snapshot) error { authz.Update(s); return nil })
	a.statusExtra["envoy"] = func() any { return p.Status() }
	return nil
}

// waitDataPlaneReady blocks until a supervised Envoy reports ready, so
// /ready does not turn green before traffic can flow.
func (a *Agent) waitDataPlaneReady(ctx context.Context) error {
	if a.envoyPlane == nil || a.dataPlaneName != "envoy" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := a.envoyPlane.WaitReady(ctx); err != nil {
		return fmt.Errorf("envoy did not become ready: %w", err)
	}
	return nil
}
