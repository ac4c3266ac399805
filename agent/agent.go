// Package agent wires flexgw together: it watches the config directory,
// compiles each change into an ir.Snapshot, hands accepted snapshots to the
// data plane, serves the admin API, and shuts everything down in order.
// Its long-running parts start from one ordered list (Agent.runners) and
// close in reverse.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/config"
	"github.com/flexgw/flexgw/dataplane"
	"github.com/flexgw/flexgw/ebpf"
	"github.com/flexgw/flexgw/envoy/plane"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/logpipe"
	"github.com/flexgw/flexgw/observe"
	"github.com/flexgw/flexgw/snapshot"
	"github.com/flexgw/flexgw/stats"
	"github.com/flexgw/flexgw/telemetry"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure one agent; cmd/flexgw maps its flags onto them.
type Options struct {
	ConfigDir string
	// Source, when set, replaces ConfigDir as where the configuration
	// comes from (the Kubernetes API): the agent compiles its documents
	// through the same path and reports every outcome back to it.
	Source Source
	// AdminAddr is host:port of the admin API.
	AdminAddr string
	// AdminToken, when set, is required as "Authorization: Bearer <token>"
	// on every admin endpoint but /live and /ready. A non-loopback
	// AdminAddr requires it unless AdminInsecure is set.
	AdminToken string
	// AdminInsecure allows a non-loopback AdminAddr without a token.
	AdminInsecure bool
	// AdminHosts are extra names the admin API accepts in Host (the name
	// Prometheus scrapes it by); loopback, the AdminAddr host and, for a
	// wildcard AdminAddr, IP literals are always accepted.
	AdminHosts []string
	// AccessLog is a file path, "-" for stdout, or "off".
	AccessLog    string
	DrainTimeout time.Duration
	GatewayID    string
	// DataPlane is auto, builtin, envoy or xds.
	DataPlane string
	EnvoyPath string
	// EnvoyAdmin is the supervised Envoy's admin address (default 127.0.0.1:9901).
	EnvoyAdmin string
	// FluentBitPlugin is out_flexgw.so; with Envoy and a fluent-bit
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

	// EscapedSlashes is what %2F and %5C in request paths do, on either
	// data plane (docs/security.md).
	EscapedSlashes ir.EscapedSlashes
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
	// stopLogFollowers stops what follows Envoy's access-log file (the
	// tail, Fluent Bit) once Envoy has exited; nil when nothing does.
	stopLogFollowers func()
	accessLog        accesslog.Sink
	// hooks are telemetry's request hooks for the built-in data plane.
	hooks observe.Hooks
	// envoyPath is the Envoy binary chosen with the data plane.
	envoyPath string
	// adminAddr is the bound admin API address (--admin may end in :0).
	adminAddr  string
	adminExtra map[string]http.Handler
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
//
// Once ctx is cancelled Run returns within the drain timeout plus
// closeTimeout, even when a part is stuck (a config file on a hung network
// filesystem, an exporter that never answers): a process that ignores
// SIGTERM is killed by its supervisor without the last flushes anyway, and
// holds up a rolling update until then.
func Run(ctx context.Context, o Options) error {
	a, err := newAgent(o)
	if err != nil {
		return err
	}
	return runBounded(ctx, a.opts.DrainTimeout+closeTimeout, a.run)
}

// runBounded runs run(ctx) and returns its error, or, when it has not
// returned limit after ctx was cancelled, an error saying so; run's
// goroutine is then abandoned to the process exit.
func runBounded(ctx context.Context, limit time.Duration, run func(context.Context) error) error {
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("shutdown still not finished %s after the stop signal (drain timeout + %s to close); exiting without it", limit, closeTimeout)
	}
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
	exposed, err := adminExposure(o)
	if err != nil {
		return nil, err
	}
	if exposed && o.AdminToken == "" {
		o.Logger.Warn("admin API reachable from other hosts without a token (--admin-insecure): configuration, status and metrics are readable by anyone who can connect",
			"component", "agent", "admin", o.AdminAddr)
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

// Source is a configuration source other than the directory.
type Source interface {
	// Name says where the configuration comes from, for logs.
	Name() string
	// Files returns the current resources as YAML documents, one file each.
	Files() []config.File
	// Notify calls onChange whenever the resources change, until stop.
	Notify(onChange func()) (stop func())
	// Report tells the source how the documents Files returned last fared:
	// served is the snapshot serving now, err why they were rejected (nil
	// when they serve).
	Report(served *ir.Snapshot, err error)
}

// load compiles the config directory (or the source's documents) into a
// snapshot with the next version. Once a data plane that checks snapshots
// itself runs (envoyChecker), the Envoy check is left to reload, which
// runs it only for a snapshot that changed.
func (a *Agent) load(version uint64) (*ir.Snapshot, error) {
	check := checkEnvoy
	if _, ok := a.plane.(envoyChecker); ok {
		check = nil
	}
	var snap *ir.Snapshot
	var err error
	if a.opts.Source != nil {
		snap, err = snapshot.LoadFiles(a.opts.Source.Files(), version)
	} else {
		snap, err = snapshot.LoadDir(a.opts.ConfigDir, version)
	}
	return checkDataPlanes(snap, err, check)
}

// envoyChecker is a data plane that refuses what Envoy would with its own
// translation, kept for the Apply of the same snapshot (envoy/plane): a
// reload then translates once instead of twice.
type envoyChecker interface {
	Check(*ir.Snapshot) error
}

// checkPlane runs the data plane's own Envoy check, if it has one.
func (a *Agent) checkPlane(s *ir.Snapshot) error {
	if c, ok := a.plane.(envoyChecker); ok {
		if err := c.Check(s); err != nil {
			return fmt.Errorf("envoy: %w", err)
		}
	}
	return nil
}

// report passes a load's outcome to the source, if there is one.
func (a *Agent) report(served *ir.Snapshot, err error) {
	if a.opts.Source != nil {
		a.opts.Source.Report(served, err)
	}
}

// configName names the configuration's origin in logs and errors.
func (a *Agent) configName() string {
	if a.opts.Source != nil {
		return a.opts.Source.Name()
	}
	return a.opts.ConfigDir
}

func (a *Agent) run(ctx context.Context) error {
	// Fingerprint before reading, so an edit during start-up is reloaded.
	fp := ""
	if a.opts.Source == nil {
		fp = fingerprint(a.opts.ConfigDir)
	}
	first, err := a.load(1)
	var firstErr error
	if err != nil && a.opts.Source != nil {
		// A cluster's resources are fixed by kubectl, not by restarting
		// the gateway: start with nothing, say why in the resources'
		// status, and load again on the next change.
		for _, l := range errorLines(err) {
			a.log.Error("config rejected, starting with an empty configuration", "source", a.configName(), "problem", l)
		}
		firstErr = err
		first, err = CompileFiles(nil, 1)
	}
	if err != nil {
		// Every config error already names its file or the directory.
		return fmt.Errorf("config: %w", err)
	}
	// The data plane is chosen before anything starts: a bad --dataplane
	// leaves nothing to undo, and telemetry needs to know which one runs.
	a.dataPlaneName, a.dataPlaneReason, a.envoyPath, err = a.chooseDataPlane()
	if err != nil {
		return err
	}

	lc := &lifecycle{log: func() *slog.Logger { return a.log }}
	defer lc.close()
	if err := lc.start(ctx, a.runners(first, fp)); err != nil {
		return err
	}

	if err := a.apply(first); err != nil {
		return err
	}
	if err := a.waitDataPlaneReady(ctx); err != nil {
		return err
	}
	a.state.mu.Lock()
	a.state.current = first
	a.state.ready = true
	a.state.last = Reload{Time: time.Now(), Result: resultSuccess, Reason: "startup"}
	a.state.mu.Unlock()
	a.notifyReload(true, first)
	a.report(first, firstErr)
	a.log.Info("serving", "config", a.configName(), "snapshot", first.Version, "summary", ir.Summary(first),
		"dataplane", a.dataPlaneName, "admin", a.adminAddr)
	a.logIfEmpty(first)
	a.logWarnings(first)
	if a.opts.OnReady != nil {
		a.opts.OnReady(a.adminAddr)
	}

	for {
		select {
		case <-ctx.Done():
			a.shutdown(lc)
			return nil
		case reason := <-a.reloadCh:
			a.reload(reason)
		}
	}
}

// runners is the agent's one ordered list of long-running parts. They
// start top to bottom and close bottom to top; the comment on each says
// why it sits where it does.
func (a *Agent) runners(first *ir.Snapshot, fp string) []runner {
	return []runner{
		// Shared storage first, so it closes last: every policy instance
		// holds it for the life of the process, and requests finishing
		// during the drain still count rate limits in it.
		&part{name: "shared storage", start: a.startSharedStore},
		// The kernel probe before any socket exists: it counts only
		// sockets created after it moved the process into its cgroup.
		&part{name: "ebpf probe", start: func(context.Context) (stopFunc, error) { return a.startProbe(first) }},
		// The log pipeline before every part that logs or writes records:
		// from here on runtime logs also reach its outputs. Closed after
		// the data plane drained, so the last records are flushed.
		&part{name: "log pipeline", start: func(ctx context.Context) (stopFunc, error) { return a.startLogPipeline(ctx, first) }},
		// The access-log file before the data plane writes to it.
		&part{name: "access log", start: func(context.Context) (stopFunc, error) { return a.startAccessLog() }},
		// Metrics, tracing and the `flexgw top` statistics before the data
		// plane: they supply the hooks it calls on every request.
		&part{name: "telemetry", start: func(context.Context) (stopFunc, error) { return a.startTelemetry() }},
		// The data plane (built-in, or ADS + supervised Envoy). It binds no
		// listener until the first snapshot is applied, and at shutdown
		// drains in-flight requests before anything above it closes.
		&dataPlaneRunner{a: a, first: first},
		// The config watcher (file changes and SIGHUP): a change noticed
		// from here on waits in reloadCh until the first snapshot serves;
		// fp, taken before the first load, catches an edit made meanwhile.
		&part{name: "config watch", start: func(context.Context) (stopFunc, error) { return a.startWatch(fp), nil }},
		// The admin API last: it mounts the handlers and status every part
		// above registered (written only in their Start, so read without a
		// lock), and /ready says "starting" until the first snapshot serves.
		&part{name: "admin API", start: func(context.Context) (stopFunc, error) { return a.startAdmin() }},
	}
}

func (a *Agent) requestReload(reason string) {
	select {
	case a.reloadCh <- reason:
	default: // one pending reload already covers this change
	}
}

// reload compiles the directory again; an invalid change is rejected with
// every problem logged and the last good snapshot keeps serving. The first
// good reload after a rejection is reported as "recovered", whether the fix
// changed the configuration or restored what was serving.
func (a *Agent) reload(reason string) {
	cur := a.state.snapshot()
	a.state.mu.RLock()
	wasFailing := a.state.last.Result == resultFailure
	a.state.mu.RUnlock()
	next, err := a.load(cur.Version + 1)
	if err == nil && next.Hash == cur.Hash {
		result := resultUnchanged
		if wasFailing {
			result = resultRecovered
			a.log.Info("config recovered", "reason", reason, "snapshot", cur.Version, "summary", ir.Summary(cur))
		}
		a.state.mu.Lock()
		a.state.last = Reload{Time: time.Now(), Result: result, Reason: reason}
		a.state.mu.Unlock()
		a.report(cur, nil)
		return
	}
	if err == nil {
		err = a.checkPlane(next)
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
		a.state.last = Reload{Time: time.Now(), Result: resultFailure, Reason: reason, Error: err.Error(), Errors: lines}
		a.state.mu.Unlock()
		a.notifyReload(false, cur)
		a.report(cur, err)
		return
	}
	result := resultSuccess
	if wasFailing {
		result = resultRecovered
	}
	a.state.mu.Lock()
	a.state.current = next
	a.state.last = Reload{Time: time.Now(), Result: result, Reason: reason}
	a.state.mu.Unlock()
	a.notifyReload(true, next)
	a.report(next, nil)
	if wasFailing {
		a.log.Info("config recovered", "reason", reason, "snapshot", next.Version, "summary", ir.Summary(next))
	} else {
		a.log.Info("config reloaded", "reason", reason, "snapshot", next.Version, "summary", ir.Summary(next))
	}
	a.logIfEmpty(next)
	a.logWarnings(next)
}

// logWarnings logs each warning of an accepted configuration (a valid
// setting that does not protect what its author likely expects).
func (a *Agent) logWarnings(s *ir.Snapshot) {
	for _, w := range s.Warnings {
		a.log.Warn("config warning", "problem", w)
	}
}

// logIfEmpty says so when a snapshot has no APIs: a fresh install's
// conf.d is empty, and the gateway serves its admin API and waits for files.
func (a *Agent) logIfEmpty(s *ir.Snapshot) {
	if len(s.APIs()) == 0 {
		if a.opts.Source != nil {
			a.log.Info("no APIs configured: apply Flex Gateway resources (or Ingresses, HTTPRoutes) to the source; they are loaded as they appear",
				"config", a.opts.Source.Name(), "snapshot", s.Version)
			return
		}
		a.log.Info("no APIs configured: add Flex Gateway *.yaml files to the config directory; they are loaded as they appear",
			"config", a.opts.ConfigDir, "snapshot", s.Version)
	}
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

// shutdown turns /ready to "draining", lets the data plane finish
// in-flight requests within the drain timeout, then closes every part in
// reverse start order.
func (a *Agent) shutdown(lc *lifecycle) {
	a.state.mu.Lock()
	a.state.ready = false
	a.state.draining = true
	a.state.mu.Unlock()
	a.log.Info("draining", "timeout", a.opts.DrainTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.DrainTimeout)
	lc.drain(ctx)
	cancel()
	// Logged before the parts close, so the log pipeline (closed near the
	// end) still ships this line to the runtime outputs.
	a.log.Info("stopped")
	_ = lc.close() // every failure is logged by close
}

// startAccessLog opens the access-log file (or stdout) the built-in data
// plane writes, and Envoy's path for the tail.
func (a *Agent) startAccessLog() (stopFunc, error) {
	if a.opts.AccessLog == "off" {
		return nil, nil
	}
	w, err := accesslog.NewFileWriter(a.opts.AccessLog)
	if err != nil {
		return nil, fmt.Errorf("--access-log %s: %w", a.opts.AccessLog, err)
	}
	a.accessLog = w
	return func(context.Context) error { return w.Close() }, nil
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
