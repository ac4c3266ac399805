package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// runner is one long-running part of the agent (shared storage, the eBPF
// probe, the log pipeline, the data plane, the admin API, ...). The agent
// starts them from one ordered list, Agent.runners, and closes the ones
// that started in reverse, so no part outlives another it depends on.
type runner interface {
	// Name names the part in start-up errors and close warnings.
	Name() string
	// Start brings the part up. When it fails it undoes its own partial
	// work: only parts whose Start returned nil are closed.
	Start(ctx context.Context) error
	// Close releases what Start acquired.
	Close(ctx context.Context) error
}

// drainer is a runner with in-flight work to finish before anything is
// closed: the data plane, whose requests still write access-log records,
// count rate limits and emit spans while they complete.
type drainer interface {
	runner
	Drain(ctx context.Context) error
}

// stopFunc undoes one part's start.
type stopFunc = func(context.Context) error

// part adapts a start function to runner, for parts that are a few steps
// of the agent rather than a type of their own. start returns the function
// that undoes it, or nil when there is nothing to undo (a probe that is
// off, an access log that is off).
type part struct {
	name  string
	start func(ctx context.Context) (stopFunc, error)
	stop  stopFunc
}

var _ runner = (*part)(nil)

func (p *part) Name() string { return p.name }

func (p *part) Start(ctx context.Context) error {
	stop, err := p.start(ctx)
	if err != nil {
		return err
	}
	p.stop = stop
	return nil
}

func (p *part) Close(ctx context.Context) error {
	if p.stop == nil {
		return nil
	}
	return p.stop(ctx)
}

// closeTimeout bounds each part's Close, so one stuck part (an exporter
// flush to an unreachable endpoint) cannot hold up the rest of shutdown.
const closeTimeout = 5 * time.Second

// lifecycle starts runners in order and stops the started ones in reverse.
type lifecycle struct {
	// log is read at each use: the agent's logger changes once the log
	// pipeline starts (runtime logs then also reach its outputs).
	log     func() *slog.Logger
	started []runner
}

// start starts rs in order. When one fails, the ones already started are
// closed in reverse and the error names the part that failed.
func (l *lifecycle) start(ctx context.Context, rs []runner) error {
	for _, r := range rs {
		if err := r.Start(ctx); err != nil {
			l.close()
			return fmt.Errorf("start %s: %w", r.Name(), err)
		}
		l.started = append(l.started, r)
	}
	return nil
}

// drain lets every started drainer finish its in-flight work, in reverse
// order, within ctx (the drain timeout). An incomplete drain is logged:
// shutdown goes on, as the process is stopping either way.
func (l *lifecycle) drain(ctx context.Context) {
	for i := len(l.started) - 1; i >= 0; i-- {
		d, ok := l.started[i].(drainer)
		if !ok {
			continue
		}
		if err := d.Drain(ctx); err != nil {
			l.log().Warn("drain incomplete", "runner", d.Name(), "error", err)
		}
	}
}

// close closes the started runners in reverse order, each within
// closeTimeout, logs every failure and returns them joined. A second call
// does nothing: run closes on every return path, including after a failed
// start that already closed.
func (l *lifecycle) close() error {
	var errs []error
	for len(l.started) > 0 {
		r := l.started[len(l.started)-1]
		l.started = l.started[:len(l.started)-1]
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		err := r.Close(ctx)
		cancel()
		if err != nil {
			l.log().Warn("close", "runner", r.Name(), "error", err)
			errs = append(errs, fmt.Errorf("close %s: %w", r.Name(), err))
		}
	}
	return errors.Join(errs...)
}
