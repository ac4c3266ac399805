// Package plane is the Envoy data plane as the agent sees it: one object
// with the built-in data plane's shape (Start, Apply, Shutdown) that runs
// the ADS server and, in envoy mode, the supervised Envoy it configures,
// plus the collectors that expose both on the agent's /metrics.
//
//	--dataplane envoy: ADS server + Envoy started with envoy.Bootstrap
//	--dataplane xds:   ADS server only, for Envoys started elsewhere
package plane

import (
	"google.golang.org/grpc"

	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flexgw/flexgw/envoy"
	"github.com/flexgw/flexgw/envoy/stats"
	"github.com/flexgw/flexgw/envoy/supervisor"
	"github.com/flexgw/flexgw/envoy/translate"
	"github.com/flexgw/flexgw/envoy/xds"
	"github.com/flexgw/flexgw/ir"
)

// Modes.
const (
	ModeEnvoy = "envoy"
	ModeXDS   = "xds"
)

// Options configure a Plane. Zero values take the defaults of the parts.
type Options struct {
	// Mode is ModeEnvoy (run Envoy) or ModeXDS (serve ADS only).
	Mode string
	// XDSAddress is --xds-address: host:port or a unix socket path.
	XDSAddress string
	// EnvoyPath is the envoy binary (envoy.Detect) for ModeEnvoy.
	EnvoyPath string
	// Bootstrap is the bootstrap of the supervised Envoy; its XDSAddress is
	// filled with the address the ADS server listens on.
	Bootstrap envoy.BootstrapOptions
	// Translate carries the gateway id and the access-log path.
	Translate translate.Options
	Logger    *slog.Logger
	// Register adds gRPC services (policy engine) to the ADS server.
	Register []func(*grpc.Server)
	// Supervisor, when set, adjusts the supervisor's options (backoff,
	// timeouts) before it is created.
	Supervisor func(*supervisor.Options)
}

// Plane runs the ADS server and, in envoy mode, Envoy.
type Plane struct {
	opts  Options
	log   *slog.Logger
	xds   *xds.Server
	sup   *supervisor.Supervisor
	stats *stats.Collector
}

// Status is the Envoy data plane's part of /api/v1/status.
type Status struct {
	Mode  string             `json:"mode"`
	XDS   xds.Status         `json:"xds"`
	Envoy *supervisor.Status `json:"envoy,omitempty"`
}

// New checks the options; nothing runs until Start.
func New(opts Options) (*Plane, error) {
	switch opts.Mode {
	case ModeEnvoy:
		if opts.EnvoyPath == "" {
			return nil, errors.New("envoy data plane: no envoy binary (--envoy-path, or envoy on PATH)")
		}
	case ModeXDS:
	default:
		return nil, fmt.Errorf("envoy data plane: mode %q (want %s or %s)", opts.Mode, ModeEnvoy, ModeXDS)
	}
	if opts.XDSAddress == "" {
		opts.XDSAddress = xds.DefaultAddress
	}
	if opts.Bootstrap.AdminAddress == "" {
		opts.Bootstrap.AdminAddress = envoy.DefaultAdminAddress
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	srv, err := xds.NewServer(xds.Options{Translate: opts.Translate, Logger: log, Register: opts.Register})
	if err != nil {
		return nil, err
	}
	p := &Plane{opts: opts, log: log.With("component", "envoy-plane"), xds: srv}
	if opts.Mode == ModeEnvoy {
		p.stats = stats.NewCollector(stats.Options{AdminAddr: opts.Bootstrap.AdminAddress, Names: srv.Result, Logger: log})
	}
	return p, nil
}

// Start serves ADS and, in envoy mode, starts Envoy pointed at it. Envoy
// waits for the first Apply before it is ready (WaitReady).
func (p *Plane) Start(ctx context.Context) error {
	if err := p.xds.Start(ctx, p.opts.XDSAddress); err != nil {
		return err
	}
	if p.opts.Mode != ModeEnvoy {
		p.log.Info("serving ADS for Envoys started elsewhere", "address", p.xds.Addr().String())
		return nil
	}
	bo := p.opts.Bootstrap
	bo.XDSAddress = p.opts.XDSAddress
	if a := p.xds.Addr(); a.Network() == "tcp" {
		bo.XDSAddress = a.String() // the real port when --xds-address ends in :0
	}
	bs, err := envoy.Bootstrap(bo)
	if err != nil {
		p.xds.Close()
		return err
	}
	so := supervisor.Options{EnvoyPath: p.opts.EnvoyPath, Bootstrap: bs, AdminAddr: bo.AdminAddress, Logger: p.opts.Logger}
	if p.opts.Supervisor != nil {
		p.opts.Supervisor(&so)
	}
	sup, err := supervisor.New(so)
	if err != nil {
		p.xds.Close()
		return err
	}
	if err := sup.Start(ctx); err != nil {
		p.xds.Close()
		return err
	}
	p.sup = sup
	return nil
}

// Apply translates and publishes a snapshot; on error the previous one
// keeps serving (see xds.Server.Push).
func (p *Plane) Apply(s *ir.Snapshot) error { return p.xds.Push(s) }

// Check refuses a snapshot Envoy would not take; the translation it made
// serves the Apply of the same snapshot (see xds.Server.Check).
func (p *Plane) Check(s *ir.Snapshot) error { return p.xds.Check(s) }

// WaitReady waits for the supervised Envoy's /ready (immediately true in
// xds mode).
func (p *Plane) WaitReady(ctx context.Context) error {
	if p.sup == nil {
		return nil
	}
	return p.sup.WaitReady(ctx)
}

// Shutdown drains and stops Envoy (supervisor.Close), then stops ADS. ctx
// is not used beyond the supervisor's own timeouts.
func (p *Plane) Shutdown(ctx context.Context) error {
	var errs []error
	if p.sup != nil {
		errs = append(errs, p.sup.Close())
	}
	errs = append(errs, p.xds.Close())
	return errors.Join(errs...)
}

// Status reports ADS and Envoy state.
func (p *Plane) Status() Status {
	st := Status{Mode: p.opts.Mode, XDS: p.xds.Status()}
	if p.sup != nil {
		s := p.sup.Status()
		st.Envoy = &s
	}
	return st
}

// XDS is the ADS server (its Result feeds other name mappers).
func (p *Plane) XDS() *xds.Server { return p.xds }

// Collectors are what the agent registers on its /metrics registry: the
// ADS server's counters and, in envoy mode, Envoy's stats under flexgw's
// names.
func (p *Plane) Collectors() []prometheus.Collector {
	cs := []prometheus.Collector{p.xds.Collector()}
	if p.stats != nil {
		cs = append(cs, p.stats)
	}
	return cs
}
