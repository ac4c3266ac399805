// Package sharedstore holds the stores behind policy.SharedStore: Redis,
// shared by every flexgw replica (Configuration.spec.sharedStorage.redis),
// and an in-process one used when no Redis is configured.
//
// Both implement one primitive, a fixed-window counter:
//
//   - The window of a key opens with the first Incr that finds no counter
//     and lasts exactly ttlMillis; every Incr in it (admitted or not) adds
//     one. The window does not slide and is not aligned to the clock: two
//     keys opened a moment apart close a moment apart.
//   - When the window closes the counter disappears; the next Incr opens a
//     new window at count 1. A burst straddling the boundary can therefore
//     see up to 2×limit admitted within one window length (the usual fixed
//     window edge), never more than limit inside one window.
//   - Every replica increments the same Redis key atomically (one Lua
//     script: INCRBY, PEXPIRE on the first increment, PTTL), so replicas
//     share one window and one count: N Incr calls spread across replicas
//     get the counts 1..N once each.
//
// Redis.Acquire, what rate limits call, takes those counts several at a
// time and hands them out locally (lease.go): one round trip per lease,
// never more than the limit per window across replicas, and a documented
// bound on positions leased and left unused.
package sharedstore

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrUnavailable is returned (wrapped) when the shared store cannot be
// reached; callers follow their failOpen setting.
var ErrUnavailable = errors.New("shared storage unavailable")

// StorageErrors counts failed shared-storage operations. It is registered by
// Register (the agent passes its registry) and always counts.
var StorageErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "flexgw_shared_storage_errors_total",
	Help: "Shared storage (Redis) operations that failed, by operation.",
}, []string{"op"})

// Register adds the package's metrics to reg.
func Register(reg prometheus.Registerer) error {
	if err := reg.Register(StorageErrors); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return nil
		}
		return err
	}
	return nil
}
