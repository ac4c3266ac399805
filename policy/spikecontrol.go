package policy

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/flexgw/flexgw/ir"
)

// spikeControlConfig is spike-control-flex's configuration. Spike control
// protects the backend of this replica, so it is never shared.
type spikeControlConfig struct {
	MaximumRequests          int64 `json:"maximumRequests"`
	TimePeriodInMilliseconds int64 `json:"timePeriodInMilliseconds"`
	// DelayTimeInMillis is how long a request over the limit waits before
	// trying again (default 1000), at most DelayAttempts times (default 1).
	DelayTimeInMillis int64 `json:"delayTimeInMillis"`
	DelayAttempts     *int  `json:"delayAttempts"`
	// QueuingLimit caps requests waiting at once (default 5); beyond it
	// requests are rejected at once.
	QueuingLimit  *int `json:"queuingLimit"`
	ExposeHeaders bool `json:"exposeHeaders"`
}

type spikeControl struct{}

func init() { Register(spikeControl{}) }

func (spikeControl) Name() string { return "spike-control-flex" }

func parseSpike(raw json.RawMessage) (*spikeControlConfig, error) {
	var c spikeControlConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	if c.MaximumRequests <= 0 {
		return nil, fieldErr("maximumRequests", "must be > 0, got %d", c.MaximumRequests)
	}
	if c.TimePeriodInMilliseconds <= 0 {
		return nil, fieldErr("timePeriodInMilliseconds", "must be > 0, got %d", c.TimePeriodInMilliseconds)
	}
	if c.DelayTimeInMillis < 0 {
		return nil, fieldErr("delayTimeInMillis", "must be >= 0")
	}
	if c.DelayTimeInMillis == 0 {
		c.DelayTimeInMillis = 1000
	}
	if c.DelayAttempts == nil {
		one := 1
		c.DelayAttempts = &one
	} else if *c.DelayAttempts < 0 {
		return nil, fieldErr("delayAttempts", "must be >= 0")
	}
	if c.QueuingLimit == nil {
		five := 5
		c.QueuingLimit = &five
	} else if *c.QueuingLimit < 0 {
		return nil, fieldErr("queuingLimit", "must be >= 0")
	}
	return &c, nil
}

// Validate implements Definition.
func (spikeControl) Validate(raw json.RawMessage) error {
	_, err := parseSpike(raw)
	return err
}

// spikeWindow is a fixed window that counts admitted requests only, so
// waiting requests do not burn quota while they retry.
type spikeWindow struct {
	mu     sync.Mutex
	ends   time.Time
	count  int64
	queued int
}

func (s *spikeWindow) tryAdmit(max int64, period time.Duration) (ok bool, remaining int64, reset time.Duration) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !now.Before(s.ends) {
		s.ends, s.count = now.Add(period), 0
	}
	if s.count < max {
		s.count++
		return true, max - s.count, s.ends.Sub(now)
	}
	return false, 0, s.ends.Sub(now)
}

func (s *spikeWindow) enqueue(limit int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queued >= limit {
		return false
	}
	s.queued++
	return true
}

func (s *spikeWindow) dequeue() {
	s.mu.Lock()
	s.queued--
	s.mu.Unlock()
}

// Build implements Definition.
func (d spikeControl) Build(_ Env, p *ir.Policy) (Middleware, error) {
	c, err := parseSpike(p.Config)
	if err != nil {
		return nil, err
	}
	win := &spikeWindow{}
	period := time.Duration(c.TimePeriodInMilliseconds) * time.Millisecond
	delay := time.Duration(c.DelayTimeInMillis) * time.Millisecond
	name := d.Name()
	limit := strconv.FormatInt(c.MaximumRequests, 10)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ok, remaining, reset := win.tryAdmit(c.MaximumRequests, period)
			if !ok && *c.DelayAttempts > 0 && win.enqueue(*c.QueuingLimit) {
				t := time.NewTimer(delay)
				for attempt := 0; !ok && attempt < *c.DelayAttempts; attempt++ {
					select {
					case <-r.Context().Done():
						t.Stop()
						win.dequeue()
						Decide(r, name, Error)
						return
					case <-t.C:
					}
					ok, remaining, reset = win.tryAdmit(c.MaximumRequests, period)
					t.Reset(delay)
				}
				t.Stop()
				win.dequeue()
			}
			if c.ExposeHeaders {
				h := w.Header()
				h.Set("X-Ratelimit-Limit", limit)
				h.Set("X-Ratelimit-Remaining", strconv.FormatInt(remaining, 10))
				h.Set("X-Ratelimit-Reset", strconv.FormatInt(reset.Milliseconds(), 10))
			}
			if !ok {
				secs := int64((reset + time.Second - 1) / time.Second)
				if secs < 1 {
					secs = 1
				}
				deny(w, r, name, Denied, http.StatusTooManyRequests, "spike limit exceeded", "Retry-After", strconv.FormatInt(secs, 10))
				return
			}
			Decide(r, name, Allowed)
			next.ServeHTTP(w, r)
		})
	}, nil
}

// SecretFields implements Secrets: none: nothing in this config authenticates anyone.
func (spikeControl) SecretFields() []string { return []string{} }
