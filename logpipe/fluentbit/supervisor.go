package fluentbit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"
)

// Supervisor writes the rendered config and keeps fluent-bit running:
// restarted with backoff when it exits, stopped (SIGTERM, then SIGKILL
// after Grace) when the context ends.
type Supervisor struct {
	// Binary is the fluent-bit executable (default: "fluent-bit" on PATH).
	Binary string
	// Dir receives fluent-bit.conf and plugins.conf.
	Dir    string
	Config Config
	Logger *slog.Logger
	// Output receives Fluent Bit's stdout and stderr (default os.Stderr).
	Output io.Writer
	// Grace is how long Fluent Bit gets to flush on stop (default 10s).
	Grace time.Duration
	// MinBackoff/MaxBackoff bound restart delays (default 1s / 30s).
	MinBackoff, MaxBackoff time.Duration

	starts atomic.Int64
}

// Available reports whether fluent-bit is on PATH.
func Available() (string, bool) {
	p, err := exec.LookPath("fluent-bit")
	return p, err == nil
}

// Starts returns how many times the process was started.
func (s *Supervisor) Starts() int64 { return s.starts.Load() }

// WriteConfig renders and writes the files, returning the main config path.
func (s *Supervisor) WriteConfig() (string, error) {
	pluginsPath := filepath.Join(s.Dir, "plugins.conf")
	files, err := Render(s.Config, pluginsPath)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(s.Dir, 0o750); err != nil {
		return "", fmt.Errorf("fluentbit: %w", err)
	}
	if err := os.MkdirAll(s.Config.StateDir, 0o750); err != nil {
		return "", fmt.Errorf("fluentbit: %w", err)
	}
	main := filepath.Join(s.Dir, "fluent-bit.conf")
	for path, b := range map[string][]byte{main: files.Main, pluginsPath: files.Plugins, ParsersPath(pluginsPath): files.Parsers} {
		if err := os.WriteFile(path, b, 0o640); err != nil {
			return "", fmt.Errorf("fluentbit: %w", err)
		}
	}
	return main, nil
}

// Run supervises until ctx ends. It returns a config error at once;
// process failures are logged and retried.
func (s *Supervisor) Run(ctx context.Context) error {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "fluentbit")
	bin := s.Binary
	if bin == "" {
		bin = "fluent-bit"
	}
	grace, minB, maxB := s.Grace, s.MinBackoff, s.MaxBackoff
	if grace <= 0 {
		grace = 10 * time.Second
	}
	if minB <= 0 {
		minB = time.Second
	}
	if maxB <= 0 {
		maxB = 30 * time.Second
	}
	conf, err := s.WriteConfig()
	if err != nil {
		return err
	}
	backoff := minB
	for {
		cmd := exec.Command(bin, "-c", conf)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if s.Output != nil {
			cmd.Stdout, cmd.Stderr = s.Output, s.Output
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		started := time.Now()
		if err := cmd.Start(); err != nil {
			log.Error("start fluent-bit", "binary", bin, "err", err)
		} else {
			s.starts.Add(1)
			log.Info("fluent-bit started", "pid", cmd.Process.Pid, "config", conf)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				log.Warn("fluent-bit exited; restarting", "err", err, "in", backoff)
			case <-ctx.Done():
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-done:
				case <-time.After(grace):
					log.Warn("fluent-bit ignored SIGTERM; killing", "grace", grace)
					_ = cmd.Process.Kill()
					<-done
				}
				return nil
			}
			if time.Since(started) > 2*maxB {
				backoff = minB // it ran fine for a while
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxB)
	}
}

// ErrNotInstalled is returned by callers that require fluent-bit.
var ErrNotInstalled = errors.New("fluent-bit is not on PATH")
