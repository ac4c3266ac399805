// Package supervisor runs Envoy as a child process of the agent: it starts
// it with flexgw's bootstrap, waits for the admin /ready, restarts it with
// exponential backoff when it dies, forwards its log lines into slog with
// component=envoy, and on Close drains the listeners gracefully before
// stopping it (SIGTERM, then SIGKILL after a timeout).
package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configure a Supervisor.
type Options struct {
	// EnvoyPath is the envoy binary (from envoy.Detect).
	EnvoyPath string
	// Bootstrap is the bootstrap YAML (envoy.Bootstrap); it is written to
	// a file in WorkDir. Alternatively BootstrapPath names an existing file.
	Bootstrap     []byte
	BootstrapPath string
	// WorkDir holds the bootstrap file; default: a new temporary directory,
	// removed on Close.
	WorkDir string
	// AdminAddr is Envoy's admin host:port (the bootstrap's admin address).
	AdminAddr string
	// Args are extra envoy arguments.
	Args []string
	// Logger receives the supervisor's events and Envoy's lines.
	Logger *slog.Logger

	// MinBackoff and MaxBackoff bound the restart delay, which doubles on
	// every crash and resets once Envoy has run for StableAfter. Defaults
	// 1s, 30s, 60s.
	MinBackoff, MaxBackoff, StableAfter time.Duration
	// DrainTimeout bounds the graceful drain: Close waits until no
	// downstream connection is open or this passes. Default 15s.
	DrainTimeout time.Duration
	// StopTimeout is the wait between SIGTERM and SIGKILL. Default 10s.
	StopTimeout time.Duration
	// PollInterval is how often /ready and /stats are polled. Default 100ms.
	PollInterval time.Duration
}

// Status describes the supervised process.
type Status struct {
	Running  bool      `json:"running"`
	Ready    bool      `json:"ready"`
	PID      int       `json:"pid,omitempty"`
	Restarts int       `json:"restarts"`
	Started  time.Time `json:"started,omitzero"`
	// LastExit is how the previous process ended ("exit status 1").
	LastExit string `json:"lastExit,omitempty"`
	// NextBackoff is the delay before the next restart after a crash.
	NextBackoff time.Duration `json:"nextBackoff"`
}

// Supervisor runs one Envoy at a time. Start once, Close once.
type Supervisor struct {
	opts   Options
	log    *slog.Logger
	envoy  *slog.Logger
	client *http.Client

	mu       sync.Mutex
	status   Status
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the current process has exited
	readyCh  chan struct{} // closed when the current process is ready
	closing  bool
	cancel   context.CancelFunc
	loopDone chan struct{}
	tmpDir   string
}

// New checks the options and prepares the bootstrap file.
func New(opts Options) (*Supervisor, error) {
	if opts.EnvoyPath == "" {
		return nil, errors.New("supervisor: EnvoyPath is required")
	}
	if opts.AdminAddr == "" {
		return nil, errors.New("supervisor: AdminAddr is required (the bootstrap's admin address)")
	}
	if (opts.Bootstrap == nil) == (opts.BootstrapPath == "") {
		return nil, errors.New("supervisor: exactly one of Bootstrap and BootstrapPath is required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.MinBackoff, time.Second)
	def(&opts.MaxBackoff, 30*time.Second)
	def(&opts.StableAfter, time.Minute)
	def(&opts.DrainTimeout, 15*time.Second)
	def(&opts.StopTimeout, 10*time.Second)
	def(&opts.PollInterval, 100*time.Millisecond)
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Supervisor{
		opts:   opts,
		log:    log.With("component", "envoy-supervisor"),
		envoy:  log.With("component", "envoy"),
		client: &http.Client{Timeout: 2 * time.Second},
	}
	s.status.NextBackoff = opts.MinBackoff
	if opts.Bootstrap != nil {
		dir := opts.WorkDir
		if dir == "" {
			d, err := os.MkdirTemp("", "flexgw-envoy-")
			if err != nil {
				return nil, fmt.Errorf("supervisor: %w", err)
			}
			dir, s.tmpDir = d, d
		}
		path := filepath.Join(dir, "envoy-bootstrap.yaml")
		if err := os.WriteFile(path, opts.Bootstrap, 0o600); err != nil {
			return nil, fmt.Errorf("supervisor: write bootstrap: %w", err)
		}
		s.opts.BootstrapPath = path
	}
	return s, nil
}

// Name is the Runner name.
func (s *Supervisor) Name() string { return "envoy" }

// Start launches Envoy and returns once the process runs (not yet ready:
// see WaitReady). The supervision loop runs until Close.
func (s *Supervisor) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.loopDone != nil {
		s.mu.Unlock()
		return errors.New("supervisor: already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	s.loopDone = make(chan struct{})
	s.mu.Unlock()
	if err := s.spawn(); err != nil {
		cancel()
		close(s.loopDone)
		return err
	}
	go s.loop(ctx)
	return nil
}

// spawn starts one envoy process and its log forwarders and readiness probe.
func (s *Supervisor) spawn() error {
	args := append([]string{"-c", s.opts.BootstrapPath}, s.opts.Args...)
	cmd := exec.Command(s.opts.EnvoyPath, args...)
	// Own process group: a Ctrl-C to the agent is the agent's to handle
	// (it drains Envoy first), not delivered to Envoy directly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("supervisor: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("supervisor: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("supervisor: start %s: %w", s.opts.EnvoyPath, err)
	}
	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() { defer pipes.Done(); s.forward(stdout) }()
	go func() { defer pipes.Done(); s.forward(stderr) }()
	exited := make(chan struct{})
	ready := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.exited, s.readyCh = cmd, exited, ready
	s.status.Running, s.status.Ready = true, false
	s.status.PID = cmd.Process.Pid
	s.status.Started = time.Now()
	s.mu.Unlock()
	s.log.Info("envoy started", "pid", cmd.Process.Pid, "path", s.opts.EnvoyPath, "bootstrap", s.opts.BootstrapPath)
	go func() {
		// Wait reads the pipes' end, so the forwarders finish first.
		pipes.Wait()
		err := cmd.Wait()
		s.mu.Lock()
		s.status.Running, s.status.Ready = false, false
		s.status.LastExit = exitString(err)
		s.mu.Unlock()
		close(exited)
	}()
	go s.probeReady(cmd.Process.Pid, exited, ready)
	return nil
}

func exitString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// probeReady polls GET /ready until Envoy answers 200 or the process exits.
func (s *Supervisor) probeReady(pid int, exited, ready chan struct{}) {
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-exited:
			return
		case <-t.C:
		}
		resp, err := s.client.Get("http://" + s.opts.AdminAddr + "/ready")
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			s.mu.Lock()
			s.status.Ready = true
			s.mu.Unlock()
			close(ready)
			s.log.Info("envoy ready", "pid", pid)
			return
		}
	}
}

// loop restarts Envoy when it exits, with exponential backoff.
func (s *Supervisor) loop(ctx context.Context) {
	defer close(s.loopDone)
	for {
		s.mu.Lock()
		exited, started := s.exited, s.status.Started
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-exited:
		}
		s.mu.Lock()
		closing := s.closing
		if time.Since(started) >= s.opts.StableAfter {
			s.status.NextBackoff = s.opts.MinBackoff
		}
		delay := s.status.NextBackoff
		s.status.NextBackoff = min(delay*2, s.opts.MaxBackoff)
		lastExit := s.status.LastExit
		s.mu.Unlock()
		if closing {
			return
		}
		s.log.Error("envoy exited; restarting", "exit", lastExit, "backoff", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		for {
			if err := s.spawn(); err != nil {
				s.log.Error("envoy restart failed", "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(s.opts.MaxBackoff):
					continue
				}
			}
			break
		}
		s.mu.Lock()
		s.status.Restarts++
		s.mu.Unlock()
	}
}

// WaitReady blocks until the current Envoy answers /ready, the process
// exits, or ctx is done.
func (s *Supervisor) WaitReady(ctx context.Context) error {
	for {
		s.mu.Lock()
		ready, exited := s.readyCh, s.exited
		s.mu.Unlock()
		if ready == nil {
			return errors.New("supervisor: not started")
		}
		select {
		case <-ready:
			return nil
		case <-exited:
			// A restart replaces the channels; wait for the next process.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(s.opts.PollInterval):
			}
		case <-ctx.Done():
			return fmt.Errorf("supervisor: envoy not ready: %w", ctx.Err())
		}
	}
}

// Status returns the process state.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Close drains and stops Envoy: POST /drain_listeners?graceful, wait for
// downstream connections to close (at most DrainTimeout), SIGTERM, and
// SIGKILL after StopTimeout. No restart happens once Close has begun.
func (s *Supervisor) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	cancel, loopDone := s.cancel, s.loopDone
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-loopDone
	// The loop is gone: the process read now is the last one.
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	defer func() {
		if s.tmpDir != "" {
			os.RemoveAll(s.tmpDir)
		}
	}()
	select {
	case <-exited:
		return nil
	default:
	}
	s.drain(exited)
	s.log.Info("stopping envoy", "pid", cmd.Process.Pid)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.log.Warn("SIGTERM failed", "err", err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(s.opts.StopTimeout):
	}
	s.log.Warn("envoy did not stop; killing it", "pid", cmd.Process.Pid, "after", s.opts.StopTimeout)
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("supervisor: kill envoy: %w", err)
	}
	<-exited
	return nil
}

// drain asks Envoy to drain its listeners gracefully and waits for open
// downstream connections to finish.
func (s *Supervisor) drain(exited chan struct{}) {
	resp, err := s.client.Post("http://"+s.opts.AdminAddr+"/drain_listeners?graceful", "text/plain", nil)
	if err != nil {
		s.log.Warn("drain request failed; stopping without draining", "err", err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	s.log.Info("draining envoy listeners", "timeout", s.opts.DrainTimeout)
	deadline := time.Now().Add(s.opts.DrainTimeout)
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	for time.Now().Before(deadline) {
		n, err := s.activeConnections()
		if err == nil && n == 0 {
			s.log.Info("envoy drained")
			return
		}
		select {
		case <-exited:
			return
		case <-t.C:
		}
	}
	s.log.Warn("drain timed out; stopping with connections open", "timeout", s.opts.DrainTimeout)
}

// activeConnections sums http.*.downstream_cx_active from /stats.
func (s *Supervisor) activeConnections() (int, error) {
	resp, err := s.client.Get("http://" + s.opts.AdminAddr + "/stats?filter=downstream_cx_active$")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("stats: %s", resp.Status)
	}
	total := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ": ")
		if !ok || !strings.HasPrefix(name, "http.") || !strings.HasSuffix(name, ".downstream_cx_active") {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil {
			continue
		}
		total += n
	}
	return total, sc.Err()
}

// forward copies Envoy's output lines into slog at the line's level.
func (s *Supervisor) forward(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		s.envoy.Log(context.Background(), lineLevel(line), line)
	}
}

// lineLevel reads the level of Envoy's default log format:
// "[2024-05-01 10:00:00.000][42][warning][config] ...".
func lineLevel(line string) slog.Level {
	for i := 0; i < 3; i++ {
		open := strings.IndexByte(line, '[')
		end := strings.IndexByte(line, ']')
		if open != 0 || end < 0 {
			return slog.LevelInfo
		}
		field := line[1:end]
		line = line[end+1:]
		if i < 2 {
			continue
		}
		switch field {
		case "trace", "debug":
			return slog.LevelDebug
		case "warning", "warn":
			return slog.LevelWarn
		case "error", "critical":
			return slog.LevelError
		}
	}
	return slog.LevelInfo
}
