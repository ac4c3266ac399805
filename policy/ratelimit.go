package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy/internal/dw"
	"github.com/flexgw/flexgw/sharedstore"
)

// rateLimitConfig is rate-limiting-flex's configuration.
type rateLimitConfig struct {
	RateLimits []rateLimit `json:"rateLimits"`
	// KeySelector groups requests into independent quotas ("#[attributes.method]").
	KeySelector   string `json:"keySelector"`
	ExposeHeaders bool   `json:"exposeHeaders"`
	// Clusterizable shares the quota through sharedStorage (default true);
	// without a configured Redis the quota is per replica.
	Clusterizable *bool `json:"clusterizable"`
	// FailOpen (flexgw) admits requests when the shared storage cannot be
	// reached; the default rejects them with 503.
	FailOpen bool `json:"failOpen"`
	// FineTuning is accepted for Flex compatibility; the share of quota a
	// replica leases from the shared store adapts by itself
	// (sharedstore/lease.go).
	FineTuning json.RawMessage `json:"fineTuning"`
}

type rateLimit struct {
	MaximumRequests          int64 `json:"maximumRequests"`
	TimePeriodInMilliseconds int64 `json:"timePeriodInMilliseconds"`
}

// localWindows holds the quotas of non-clusterizable bindings. It lives for
// the process, so a config reload does not hand out a fresh quota.
var localWindows = sharedstore.NewMemory()

type rateLimiting struct{}

func init() { Register(rateLimiting{}) }

func (rateLimiting) Name() string { return "rate-limiting-flex" }

func parseRateLimit(raw json.RawMessage) (*rateLimitConfig, *dw.Expr, error) {
	var c rateLimitConfig
	if err := decode(raw, &c); err != nil {
		return nil, nil, err
	}
	if len(c.RateLimits) == 0 {
		return nil, nil, fieldErr("rateLimits", "required: at least one {maximumRequests, timePeriodInMilliseconds}")
	}
	for i, l := range c.RateLimits {
		if l.MaximumRequests <= 0 {
			return nil, nil, fieldErr(fmt.Sprintf("rateLimits[%d].maximumRequests", i), "must be > 0, got %d", l.MaximumRequests)
		}
		if l.TimePeriodInMilliseconds <= 0 {
			return nil, nil, fieldErr(fmt.Sprintf("rateLimits[%d].timePeriodInMilliseconds", i), "must be > 0, got %d", l.TimePeriodInMilliseconds)
		}
	}
	var key *dw.Expr
	if c.KeySelector != "" {
		k, err := compileExpr("keySelector", c.KeySelector)
		if err != nil {
			return nil, nil, err
		}
		key = k
	}
	return &c, key, nil
}

// Validate implements Definition.
func (rateLimiting) Validate(raw json.RawMessage) error {
	_, _, err := parseRateLimit(raw)
	return err
}

// Build implements Definition.
func (d rateLimiting) Build(env Env, p *ir.Policy) (Middleware, error) {
	c, key, err := parseRateLimit(p.Config)
	if err != nil {
		return nil, err
	}
	store := SharedStore(localWindows)
	shared := c.Clusterizable == nil || *c.Clusterizable
	if shared && env.Shared != nil {
		store = env.Shared
	}
	log := logger(env).With("policy", d.Name(), "binding", p.Binding)
	api := apiName(env)
	// Key prefixes include the limit so a changed limit starts a new window.
	prefixes := make([]string, len(c.RateLimits))
	for i, l := range c.RateLimits {
		prefixes[i] = RateLimitBucket(api, p.Binding, i, l.MaximumRequests, l.TimePeriodInMilliseconds)
	}
	limitStr := make([]string, len(c.RateLimits))
	for i, l := range c.RateLimits {
		limitStr[i] = strconv.FormatInt(l.MaximumRequests, 10)
	}
	rl := &rateLimiter{name: d.Name(), cfg: c, key: key, store: store, log: log, api: api, prefixes: prefixes, limits: limitStr}
	rl.quota, _ = store.(QuotaStore)
	return rl.middleware, nil
}

type rateLimiter struct {
	name     string
	cfg      *rateLimitConfig
	key      *dw.Expr
	store    SharedStore
	quota    QuotaStore // store, when it leases quota; else nil
	log      *slog.Logger
	api      string
	prefixes []string
	limits   []string
}

func (rl *rateLimiter) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		group := ""
		if rl.key != nil {
			group = RateLimitGroup(rl.key.String(&dw.Env{Request: r, API: rl.api}))
		}
		// Every limit must have quota left; the headers report the one
		// closest to exhaustion.
		var (
			exceeded     bool
			worstRemain  int64 = -1
			worstLimit   string
			worstResetMs int64
			retryAfterMs int64
		)
		for i, l := range rl.cfg.RateLimits {
			n, leftMs, err := rl.take(r, rl.prefixes[i]+group, l)
			if err != nil {
				rl.storeFailed(w, r, next, err)
				return
			}
			remain := l.MaximumRequests - n
			if remain < 0 {
				remain = 0
			}
			if n > l.MaximumRequests {
				exceeded = true
				if leftMs > retryAfterMs {
					retryAfterMs = leftMs
				}
			}
			if worstRemain < 0 || remain < worstRemain {
				worstRemain, worstLimit, worstResetMs = remain, rl.limits[i], leftMs
			}
		}
		if rl.cfg.ExposeHeaders {
			exposeHeaders(w.Header(), worstLimit, worstRemain, worstResetMs)
		}
		if exceeded {
			secs := (retryAfterMs + 999) / 1000
			if secs < 1 {
				secs = 1
			}
			deny(w, r, rl.name, Denied, http.StatusTooManyRequests, "quota exceeded", "Retry-After", strconv.FormatInt(secs, 10))
			return
		}
		Decide(r, rl.name, Allowed)
		next.ServeHTTP(w, r)
	})
}

// take counts r in one limit's window and returns its position there.
func (rl *rateLimiter) take(r *http.Request, key string, l rateLimit) (int64, int64, error) {
	if rl.quota != nil {
		return rl.quota.Acquire(r.Context(), key, l.MaximumRequests, l.TimePeriodInMilliseconds)
	}
	return rl.store.Incr(r.Context(), key, l.TimePeriodInMilliseconds)
}

// exposeHeaders sets the X-Ratelimit-* headers with two allocations
// instead of five (three value slices, two number strings): the values
// share one backing array, each slice capped so an append elsewhere
// copies instead of overwriting its neighbour, and both numbers are
// formatted into one string.
func exposeHeaders(h http.Header, limit string, remain, resetMs int64) {
	var buf [40]byte
	b := strconv.AppendInt(buf[:0], remain, 10)
	split := len(b)
	b = strconv.AppendInt(b, resetMs, 10)
	nums := string(b)
	vals := make([]string, 3)
	vals[0], vals[1], vals[2] = limit, nums[:split], nums[split:]
	// Canonical keys, as h.Set would store them.
	h["X-Ratelimit-Limit"] = vals[0:1:1]
	h["X-Ratelimit-Remaining"] = vals[1:2:2]
	h["X-Ratelimit-Reset"] = vals[2:3:3]
}

func (rl *rateLimiter) storeFailed(w http.ResponseWriter, r *http.Request, next http.Handler, err error) {
	// The store logs outages once; per request this is debug detail.
	rl.log.Debug("rate limit: shared storage failed", "failOpen", rl.cfg.FailOpen, "err", err)
	if rl.cfg.FailOpen {
		Decide(r, rl.name, Error)
		next.ServeHTTP(w, r)
		return
	}
	msg := "rate limit unavailable: shared storage unreachable"
	if !errors.Is(err, sharedstore.ErrUnavailable) {
		msg = "rate limit unavailable: " + strings.SplitN(err.Error(), ":", 2)[0]
	}
	deny(w, r, rl.name, Error, http.StatusServiceUnavailable, msg)
}

func logger(env Env) *slog.Logger {
	l := env.Logger
	if l == nil {
		l = slog.Default()
	}
	return l.With("component", "policy")
}

// RateLimitDomain is the RateLimitService domain of flexgw's descriptors.
const RateLimitDomain = "flexgw"

// Descriptor entry keys the Envoy rendering emits and policy/rls reads: the
// bucket carries the same Redis key prefix the built-in data plane uses, so
// both data planes count in the same windows.
const (
	DescriptorBucket = "flexgw_bucket"
	DescriptorLimit  = "flexgw_limit"
	DescriptorKey    = "flexgw_key"
)

// RateLimitBucket is the shared-store key prefix of one limit of a binding.
func RateLimitBucket(api, binding string, i int, max, periodMs int64) string {
	return fmt.Sprintf("flexgw:rl:%s:%s:%d:%d/%d:", api, binding, i, max, periodMs)
}

// maxGroupLen bounds the keySelector value kept verbatim in a store key.
const maxGroupLen = 128

// RateLimitGroup is the store-key form of a keySelector value: verbatim
// when short, else its SHA-256, so a huge header cannot make a huge key.
// policy/rls applies the same mapping, so both data planes agree.
func RateLimitGroup(v string) string {
	if len(v) <= maxGroupLen {
		return v
	}
	sum := sha256.Sum256([]byte(v))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// SecretFields implements Secrets: none: nothing in this config authenticates anyone.
func (rateLimiting) SecretFields() []string { return []string{} }

// RateLimitSpec is a rate-limiting-flex binding's validated configuration
// as plain data: what a data plane other than the built-in one (the Envoy
// rendering in envoy/policyfilter) needs to enforce the same limits.
type RateLimitSpec struct {
	Windows     []RateLimitWindow
	KeySelector string
	// Clusterizable shares the quota through sharedStorage when the
	// configuration declares one (Flex's default).
	Clusterizable bool
	ExposeHeaders bool
	FailOpen      bool
}

// RateLimitWindow is one limit: MaximumRequests per PeriodMillis.
type RateLimitWindow struct {
	MaximumRequests int64
	PeriodMillis    int64
}

// RateLimitSpecOf validates p's configuration and returns it as a RateLimitSpec.
func RateLimitSpecOf(p *ir.Policy) (*RateLimitSpec, error) {
	c, _, err := parseRateLimit(p.Config)
	if err != nil {
		return nil, err
	}
	s := &RateLimitSpec{
		KeySelector:   c.KeySelector,
		Clusterizable: c.Clusterizable == nil || *c.Clusterizable,
		ExposeHeaders: c.ExposeHeaders,
		FailOpen:      c.FailOpen,
	}
	for _, l := range c.RateLimits {
		s.Windows = append(s.Windows, RateLimitWindow{MaximumRequests: l.MaximumRequests, PeriodMillis: l.TimePeriodInMilliseconds})
	}
	return s, nil
}
