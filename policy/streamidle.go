package policy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/flexgw/flexgw/ir"
)

// ErrStreamIdleTimeout is the cancel cause of a request whose stream was
// idle longer than stream-idle-timeout-flex allows; the data plane answers
// 504 "stream timeout" (Envoy's stream_idle_timeout, response flag SI).
var ErrStreamIdleTimeout = errors.New("stream idle timeout")

// idleTimeoutConfig is the configuration of stream-idle-timeout-flex and
// idle-timeout-flex: seconds.
type idleTimeoutConfig struct {
	Timeout *float64 `json:"timeout"`
}

func parseIdleSeconds(raw json.RawMessage) (time.Duration, error) {
	var c idleTimeoutConfig
	if err := decode(raw, &c); err != nil {
		return 0, err
	}
	if c.Timeout == nil {
		return 0, fieldErr("timeout", "required (seconds)")
	}
	if *c.Timeout <= 0 || *c.Timeout > 365*24*3600 {
		return 0, fieldErr("timeout", "must be > 0 and at most a year in seconds, got %v", *c.Timeout)
	}
	return time.Duration(*c.Timeout * float64(time.Second)), nil
}

func parseStreamIdle(raw json.RawMessage) (time.Duration, error) { return parseIdleSeconds(raw) }

// streamIdle is stream-idle-timeout-flex. Shape copies the timeout to the
// API's routes (Route.StreamIdleTimeout), which Envoy renders as the
// route's idle_timeout; on the built-in data plane the middleware keeps an
// idle timer reset by every byte of the request body and by the response
// head, and cancels the request with ErrStreamIdleTimeout when it fires.
type streamIdle struct{}

func init() { Register(streamIdle{}) }

func (streamIdle) Name() string { return "stream-idle-timeout-flex" }

// Validate implements Definition.
func (streamIdle) Validate(raw json.RawMessage) error {
	_, err := parseStreamIdle(raw)
	return err
}

// Build implements Definition.
func (d streamIdle) Build(_ Env, p *ir.Policy) (Middleware, error) {
	timeout, err := parseStreamIdle(p.Config)
	if err != nil {
		return nil, err
	}
	name := d.Name()
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithCancelCause(r.Context())
			t := &idleTimer{}
			rc := http.NewResponseController(w)
			t.timer = time.AfterFunc(timeout, func() {
				// Under the timer's lock: once stop returned (the request
				// is over), the connection is never touched again.
				t.mu.Lock()
				defer t.mu.Unlock()
				if t.stopped {
					return
				}
				cancel(ErrStreamIdleTimeout)
				// Unblock a read of a quiet client's body.
				_ = rc.SetReadDeadline(time.Now())
			})
			t.d = timeout
			defer func() {
				t.stop()
				cancel(nil)
			}()
			r = r.WithContext(ctx)
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = &idleBody{ReadCloser: r.Body, t: t}
			}
			Decide(r, name, Allowed)
			next.ServeHTTP(newHookWriter(w, func(int, http.Header) {
				// The response head is out: from here the route timeout
				// bounds the body (see docs/policies.md).
				t.stop()
			}), r)
		})
	}, nil
}

// idleTimer is a timer restarted by activity, stopped for good once.
type idleTimer struct {
	mu      sync.Mutex
	timer   *time.Timer
	d       time.Duration
	stopped bool
}

func (t *idleTimer) touch() {
	t.mu.Lock()
	if !t.stopped {
		t.timer.Reset(t.d)
	}
	t.mu.Unlock()
}

func (t *idleTimer) stop() {
	t.mu.Lock()
	t.stopped = true
	t.timer.Stop()
	t.mu.Unlock()
}

// idleBody restarts the idle timer on every read that returned bytes.
type idleBody struct {
	io.ReadCloser
	t *idleTimer
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.t.touch()
	}
	return n, err
}

// SecretFields implements Secrets: none: nothing in this config authenticates anyone.
func (streamIdle) SecretFields() []string { return []string{} }
