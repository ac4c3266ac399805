package sharedstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flexgw/flexgw/ir"
)

// incrScript adds ARGV[2] (default 1) to the key's count, opens the window
// when the increment created the key, and reports the count and the time
// left. Adding n at once is what n concurrent calls for one key in a
// pipeline cost (see incrBatcher.flush); each caller still gets the count
// it would have seen incrementing alone. The PTTL<0 branch repairs a key
// that lost its expiry (e.g. written by hand), so no key can count forever.
var incrScript = redis.NewScript(`
local n = tonumber(ARGV[2]) or 1
local c = redis.call('INCRBY', KEYS[1], n)
if c == n then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return {c, tonumber(ARGV[1])}
end
local t = redis.call('PTTL', KEYS[1])
if t < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  t = tonumber(ARGV[1])
end
return {c, t}
`)

// Redis is the store shared by every replica.
type Redis struct {
	client *redis.Client
	log    *slog.Logger
	// cooldown: after a failed call, calls fail fast for this long instead
	// of each paying a dial timeout; the first call after it retries Redis,
	// which is how the store recovers by itself.
	cooldown time.Duration

	mu        sync.Mutex
	downUntil time.Time
	down      bool

	// Incr calls are pipelined: callers queue, and a flusher goroutine
	// sends everything queued while the previous round trips were in
	// flight as one pipeline (see incrBatcher).
	batch *incrBatcher
	// leases are Acquire's locally held positions (see lease.go).
	leases leases
}

// RedisOptions tunes the client; zero values take the defaults.
type RedisOptions struct {
	// DialTimeout bounds connecting (default 250ms): a request waits at
	// most this long on an unreachable Redis before failOpen applies.
	DialTimeout time.Duration
	// IOTimeout bounds one command (default 500ms).
	IOTimeout time.Duration
	// Cooldown is how long to fail fast after an error (default 500ms).
	Cooldown time.Duration
	// PoolSize is the connection pool size (default go-redis's).
	PoolSize int
	// MaxBatch bounds how many Incr calls go out in one pipeline
	// (default 256).
	MaxBatch int
	// MaxInFlight is how many Incr pipelines may be in flight at once
	// (default 1, see defaultMaxInFlight).
	MaxInFlight int
	Logger      *slog.Logger
}

// NewRedis returns a store for the configured Redis. It does not connect:
// Redis may come up after the gateway, and calls fail (counted, logged)
// until it does.
func NewRedis(cfg *ir.Redis, o RedisOptions) (*Redis, error) {
	if cfg == nil || cfg.Address == "" {
		return nil, errors.New("sharedStorage.redis.address: required")
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 250 * time.Millisecond
	}
	if o.IOTimeout == 0 {
		o.IOTimeout = 500 * time.Millisecond
	}
	if o.Cooldown == 0 {
		o.Cooldown = 500 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	opts := &redis.Options{
		Addr:         cfg.Address,
		Username:     cfg.Username,
		Password:     cfg.Password,
		DB:           cfg.DB,
		DialTimeout:  o.DialTimeout,
		ReadTimeout:  o.IOTimeout,
		WriteTimeout: o.IOTimeout,
		PoolSize:     o.PoolSize,
		// One try per request: a retry would multiply the latency of a
		// request that then fails anyway; the cooldown handles outages.
		MaxRetries:    -1,
		DialerRetries: 1,
	}
	if cfg.TLS != nil {
		tc, err := redisTLS(cfg.TLS)
		if err != nil {
			return nil, err
		}
		opts.TLSConfig = tc
	}
	s := &Redis{
		client:   redis.NewClient(opts),
		log:      o.Logger.With("component", "sharedstore", "redis", cfg.Address),
		cooldown: o.Cooldown,
	}
	s.batch = newIncrBatcher(s, o.MaxBatch, o.MaxInFlight)
	return s, nil
}

func redisTLS(t *ir.RedisTLS) (*tls.Config, error) {
	tc := &tls.Config{InsecureSkipVerify: t.SkipValidation, MinVersion: tls.VersionTLS12, NextProtos: t.ALPN} //nolint:gosec // user opts in with skipValidation
	if v, ok := tlsVersion(t.MinVersion); ok {
		tc.MinVersion = v
	}
	if v, ok := tlsVersion(t.MaxVersion); ok {
		tc.MaxVersion = v
	}
	if t.TrustedCA != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(t.TrustedCA)) {
			return nil, errors.New("sharedStorage.redis.tls.trustedCA: no PEM certificate found")
		}
		tc.RootCAs = pool
	}
	if t.CertPEM != "" || t.KeyPEM != "" {
		cert, err := tls.X509KeyPair([]byte(t.CertPEM), []byte(t.KeyPEM))
		if err != nil {
			return nil, fmt.Errorf("sharedStorage.redis.tls.certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func tlsVersion(s string) (uint16, bool) {
	switch s {
	case "1.0":
		return tls.VersionTLS10, true
	case "1.1":
		return tls.VersionTLS11, true
	case "1.2":
		return tls.VersionTLS12, true
	case "1.3":
		return tls.VersionTLS13, true
	}
	return 0, false
}

// Close stops the Incr flusher (pending calls fail) and releases the
// connection pool.
func (s *Redis) Close() error {
	s.batch.close()
	return s.client.Close()
}

// Ping checks Redis is reachable (for readiness and tests).
func (s *Redis) Ping(ctx context.Context) error {
	return s.client.Ping(ctx).Err()
}

// Incr implements policy.SharedStore with the fixed-window script. Each
// increment is still one atomic script run on the server; concurrent calls
// share round trips (see incrBatcher).
func (s *Redis) Incr(ctx context.Context, key string, ttlMillis int64) (int64, int64, error) {
	if err := s.gate(); err != nil {
		return 0, 0, err
	}
	return s.batch.incr(ctx, key, ttlMillis, 1)
}

// Get returns the string at key; found is false when the key does not
// exist. Used for client credentials kept in Redis.
func (s *Redis) Get(ctx context.Context, key string) (string, bool, error) {
	if err := s.gate(); err != nil {
		return "", false, err
	}
	v, err := s.client.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		s.ok()
		return "", false, nil
	}
	if err != nil {
		return "", false, s.fail("get", err)
	}
	s.ok()
	return v, true, nil
}

// Set stores value at key (no expiry); for provisioning and tests.
func (s *Redis) Set(ctx context.Context, key, value string) error {
	if err := s.client.Set(ctx, key, value, 0).Err(); err != nil {
		return s.fail("set", err)
	}
	return nil
}

func (s *Redis) gate() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down && time.Now().Before(s.downUntil) {
		StorageErrors.WithLabelValues("skipped").Inc()
		return fmt.Errorf("redis: %w (cooling down after an error)", ErrUnavailable)
	}
	return nil
}

func (s *Redis) fail(op string, err error) error {
	StorageErrors.WithLabelValues(op).Inc()
	s.mu.Lock()
	wasDown := s.down
	s.down = true
	s.downUntil = time.Now().Add(s.cooldown)
	s.mu.Unlock()
	if !wasDown {
		s.log.Error("shared storage unreachable; clusterizable policies follow failOpen", "op", op, "err", err)
	}
	return fmt.Errorf("redis %s: %w: %w", op, ErrUnavailable, err)
}

func (s *Redis) ok() {
	s.mu.Lock()
	wasDown := s.down
	s.down = false
	s.mu.Unlock()
	if wasDown {
		s.log.Info("shared storage reachable again")
	}
}

// FromSnapshot returns the Redis store of s's sharedStorage, or nil (and
// no error) when the configuration declares none. The caller closes it
// when a reload changes the Redis settings or the agent stops. Check the
// result for nil before storing it in an interface (policy.SharedStore):
// a nil *Redis in an interface is not a nil interface.
func FromSnapshot(s *ir.Snapshot, log *slog.Logger) (*Redis, error) {
	if s == nil || s.SharedStorage == nil || s.SharedStorage.Redis == nil {
		return nil, nil
	}
	return NewRedis(s.SharedStorage.Redis, RedisOptions{Logger: log})
}

// redisLog routes go-redis's internal messages (pool dial failures, which
// repeat on every attempt during an outage) to slog at debug level; the
// store itself logs each outage and recovery once.
type redisLog struct{}

func (redisLog) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, fmt.Sprintf(format, v...), "component", "sharedstore")
}

func init() { redis.SetLogger(redisLog{}) }

// SetPX stores value at key for ttl (http-caching-flex's shared entries).
func (s *Redis) SetPX(ctx context.Context, key, value string, ttl time.Duration) error {
	if err := s.gate(); err != nil {
		return err
	}
	if err := s.client.Set(ctx, key, value, ttl).Err(); err != nil {
		return s.fail("set", err)
	}
	s.ok()
	return nil
}

// Del removes keys.
func (s *Redis) Del(ctx context.Context, keys ...string) error {
	if err := s.gate(); err != nil {
		return err
	}
	if err := s.client.Del(ctx, keys...).Err(); err != nil {
		return s.fail("del", err)
	}
	s.ok()
	return nil
}
