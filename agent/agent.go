// Package agent wires flexgw together: it watches the config directory,
// compiles each change into an ir.Snapshot, hands accepted snapshots to the
// data plane, serves the admin API, and shuts everything down in order.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/config"
	"github.com/flexgw/flexgw/dataplane"
	"github.com/flexgw/flexgw/ebpf"
	"github.com/flexgw/flexgw/envoy/plane"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/logpipe"
	"github.com/flexgw/flexgw/sharedstore"
	"github.com/flexgw/flexgw/stats"
	"github.com/flexgw/flexgw/telemetry"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure one agent; cmd/flexgw maps its flags onto them.
type Options struct {
	ConfigDir string
	// AdminAddr is host:port of the admin API.
	AdminAddr string
	// AdminToken, when set, is required as "Authorization: Bearer <token>"
	// on every admin endpoint but /live and /ready.
	AdminToken string
	// AccessLog is a file path, "-" for stdout, or "off".
	AccessLog    string
	DrainTimeout time.Duration
	GatewayID    string
	// DataPlane is auto, builtin, envoy or xds.
	DataPlane string
	EnvoyPath string
	// EnvoyAdmin is the supervised Envoy's admin address (default 127.0.0.1:9901).
	EnvoyAdmin string
	// FluentBitPlugin is flb-out-flexgw.so; with Envoy and a fluent-bit
	// binary on PATH, Fluent Bit ships the access log through it.
	FluentBitPlugin string
	XDSAddress      string
	EBPF            string
	StateDir        string
	// LogLabels, LogRedact and LogSample tune the log pipeline: labels
	// added to every exported record, extra headers/fields/query parameters
	// redacted (Authorization, Cookie, Set-Cookie and Proxy-Authorization
	// always are), and sampling (off unless a rate is set).
	LogLabels     map[string]string
	LogRedact     logpipe.RedactOptions
	LogSample     logpipe.SampleOptions
	WatchInterval time.Duration
	Version       string
	Commit        string
	Logger        *slog.Logger
	// OnReady, when set, is called once the first snapshot serves, with
	// the bound admin address (tests and `make run` use it).
	OnReady func(adminAddr string)
}

// Agent is one running gateway process.
type Agent struct {
	opts    Options
	log     *slog.Logger
	started time.Time
	state   state

	dataPlaneName   string
	dataPlaneReason string

	plane      dataPlane
	builtin    *dataplane.DataPlane
	envoyPlane *plane.Plane
	registry   *prometheus.Registry
	probe      *ebpf.Probe
	shared     *sharedStore
	pipeline   *logpipe.Pipeline
	telemetry  *telemetry.Telemetry
	stats      *stats.Stats
	// shipWithFluentBit is set when a supervised Fluent Bit ships Envoy's
	// access log, so the in-process pipeline must not ship it twice.
	shipWithFluentBit bool
	accessLog         accesslog.Sink
	closers           []func(context.Context) error
	adminExtra        map[string]http.Handler
	// statusExtra adds component status to /api/v1/status.
	statusExtra map[string]func() any
	// onReload is called after every reload attempt (metrics).
	onReload []func(ok bool, s *ir.Snapshot)
	// appliers receive every accepted snapshot after the data plane.
	appliers []func(*ir.Snapshot) error

	reloadCh chan string
}

// Run starts an agent and blocks until ctx is cancelled (SIGTERM/SIGINT in
// cmd/flexgw), then drains and returns. Start-up problems (bad config, a
// port in use) are returned as errors.
func Run(ctx context.Context, o Options) error {
	a, err := newAgent(o)
	if err != nil {
		return err
	}
	return a.run(ctx)
}

func newAgent(o Options) (*Agent, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.AdminAddr == "" {
		o.AdminAddr = "127.0.0.1:9180"
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 15 * time.Second
	}
	if o.WatchInterval <= 0 {
		o.WatchInterval = time.Second
	}
	if o.GatewayID == "" {
		o.GatewayID, _ = os.Hostname()
	}
	if o.DataPlane == "" {
		o.DataPlane = "auto"
	}
	if o.AccessLog == "" {
		o.AccessLog = "-"
	}
	return &Agent{
		opts:        o,
		log:         o.Logger.With("component", "agent"),
		started:     time.Now(),
		adminExtra:  map[string]http.Handler{},
		statusExtra: map[string]func() any{},
		reloadCh:    make(chan string, 1),
		registry:    prometheus.NewRegistry(),
		shared:      newSharedStore(),
	}, nil
}

// load compiles the config directory into a snapshot with the next version.
func (a *Agent) load(version uint64) (*ir.Snapshot, error) {
	return Compile(a.opts.ConfigDir, version)
}

func (a *Agent) run(ctx context.Context) error {
	// Fingerprint before reading, so an edit during start-up is reloaded.
	fp := fingerprint(a.opts.ConfigDir)
	first, err := a.load(1)
	if err != nil {
		return fmt.Errorf("config %s: %w", a.opts.ConfigDir, err)
	}

	defer a.closeAll()
	a.closers = append(a.closers, a.closeSharedStore)
	if err := sharedstore.Register(a.registry); err != nil {
		return err
	}
	// The probe goes first: it only sees sockets created after it starts.
	if err := a.startProbe(first); err != nil {
		return err
	}
	if err := a.startLogPipeline(ctx, first); err != nil {
		return err
	}
	if err := a.setupAccessLog(); err != nil {
		return err
	}

	if err := a.setupDataPlane(ctx, first); err != nil {
		return err
	}

	adminLn, err := net.Listen("tcp", a.opts.AdminAddr)
	if err != nil {
		return fmt.Errorf("admin API: listen on %s: %w", a.opts.AdminAddr, err)
	}
	admin := &http.Server{Handler: a.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := admin.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("admin API stopped", "error", err)
		}
	}()
	defer admin.Close()

	if err := a.apply(first); err != nil {
		return err
	}
	if err := a.waitDataPlaneReady(ctx); err != nil {
		return err
	}
	a.state.mu.Lock()
	a.state.current = first
	a.state.ready = true
	a.state.last = Reload{Time: time.Now(), Result: "success", Reason: "startup"}
	a.state.mu.Unlock()
	a.notifyReload(true, first)
	a.log.Info("serving", "config", a.opts.ConfigDir, "snapshot", first.Version, "summary", ir.Summary(first),
		"dataplane", a.dataPlaneName, "admin", adminLn.Addr().String())
	if a.opts.OnReady != nil {
		a.opts.OnReady(adminLn.Addr().String())
	}

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go watchDir(watchCtx, a.opts.ConfigDir, fp, a.opts.WatchInterval, func() { a.requestReload("file change") })
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	for {
		select {
		case <-ctx.Done():
			return a.shutdown(admin)
		case <-hup:
			a.requestReload("SIGHUP")
		case reason := <-a.reloadCh:
			a.reload(reason)
		}
	}
}

func (a *Agent) requestReload(reason string) {
	select {
	case a.reloadCh <- reason:
	default: // one pending reload already covers this change
	}
}

// reload compiles the directory again; an invalid change is rejected with
// every problem logged and the last good snapshot keeps serving.
func (a *Agent) reload(reason string) {
	cur := a.state.snapshot()
	next, err := a.load(cur.Version + 1)
	if err == nil && next.Hash == cur.Hash {
		a.state.mu.Lock()
		a.state.last = Reload{Time: time.Now(), Result: "unchanged", Reason: reason}
		a.state.mu.Unlock()
		return
	}
	if err == nil {
		err = a.apply(next)
	}
	if err != nil {
		lines := errorLines(err)
		for _, l := range lines {
			a.log.Error("config rejected, last good snapshot keeps serving", "reason", reason, "problem", l, "serving", cur.Version)
		}
		a.state.mu.Lock()
		a.state.last = Reload{Time: time.Now(), Result: "failure", Reason: reason, Error: err.Error(), Errors: lines}
		a.state.mu.Unlock()
		a.notifyReload(false, cur)
		return
	}
	a.state.mu.Lock()
	a.state.current = next
	a.state.last = Reload{Time: time.Now(), Result: "success", Reason: reason}
	a.state.mu.Unlock()
	a.notifyReload(true, next)
	a.log.Info("config reloaded", "reason", reason, "snapshot", next.Version, "summary", ir.Summary(next))
}

func (a *Agent) notifyReload(ok bool, s *ir.Snapshot) {
	for _, f := range a.onReload {
		f(ok, s)
	}
}

// apply hands a snapshot to the data plane and then to every other consumer.
func (a *Agent) apply(s *ir.Snapshot) error {
	if err := a.applySharedStore(s); err != nil {
		return err
	}
	if a.plane != nil {
		if err := a.plane.Apply(s); err != nil {
			return err
		}
	}
	for _, f := range a.appliers {
		if err := f(s); err != nil {
			return err
		}
	}
	return nil
}

func (a *Agent) shutdown(admin *http.Server) error {
	a.state.mu.Lock()
	a.state.ready = false
	a.state.draining = true
	a.state.mu.Unlock()
	a.log.Info("draining", "timeout", a.opts.DrainTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.DrainTimeout)
	defer cancel()
	if a.plane != nil {
		if e := a.plane.Shutdown(ctx); e != nil {
			a.log.Warn("drain incomplete", "error", e)
		}
	}
	_ = admin.Shutdown(ctx)
	a.log.Info("stopped")
	return nil
}

func (a *Agent) closeAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](ctx); err != nil {
			a.log.Warn("close", "error", err)
		}
	}
}

func (a *Agent) setupAccessLog() error {
	switch a.opts.AccessLog {
	case "off":
		return nil
	default:
		w, err := accesslog.NewFileWriter(a.opts.AccessLog)
		if err != nil {
			return fmt.Errorf("access log %s: %w", a.opts.AccessLog, err)
		}
		a.accessLog = w
		a.closers = append(a.closers, func(context.Context) error { return w.Close() })
		return nil
	}
}

// errorLines splits a config error list into one problem per line.
func errorLines(err error) []string {
	var list config.ErrorList
	if errors.As(err, &list) {
		out := make([]string, 0, len(list))
		for _, e := range list {
			out = append(out, e.Error())
		}
		return out
	}
	return strings.Split(strings.TrimSpace(err.Error()), "\n")
}
