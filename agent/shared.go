package agent

import (
	"context"
	"reflect"
	"sync"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
	"github.com/flexgw/flexgw/sharedstore"
)

// sharedStore is the store every policy instance holds for the life of the
// process. It delegates to the Redis of the current snapshot, or to one
// in-memory store when the configuration declares no Redis (Flex's local
// shared storage), so a reload that changes sharedStorage.redis swaps the
// backend without rebuilding policies.
type sharedStore struct {
	mu     sync.RWMutex
	redis  *sharedstore.Redis
	cfg    *ir.Redis
	memory *sharedstore.Memory
}

var (
	_ policy.SharedStore = (*sharedStore)(nil)
	_ policy.KVStore     = (*sharedStore)(nil)
	_ policy.QuotaStore  = (*sharedStore)(nil)
)

func newSharedStore() *sharedStore { return &sharedStore{memory: sharedstore.NewMemory()} }

func (s *sharedStore) Incr(ctx context.Context, key string, ttlMillis int64) (int64, int64, error) {
	s.mu.RLock()
	r := s.redis
	s.mu.RUnlock()
	if r != nil {
		return r.Incr(ctx, key, ttlMillis)
	}
	return s.memory.Incr(ctx, key, ttlMillis)
}

// Acquire implements policy.QuotaStore: Redis leases quota; the
// in-memory store counts each request, which is already local.
func (s *sharedStore) Acquire(ctx context.Context, key string, limit, ttlMillis int64) (int64, int64, error) {
	s.mu.RLock()
	r := s.redis
	s.mu.RUnlock()
	if r != nil {
		return r.Acquire(ctx, key, limit, ttlMillis)
	}
	return s.memory.Incr(ctx, key, ttlMillis)
}

func (s *sharedStore) Get(ctx context.Context, key string) (string, bool, error) {
	s.mu.RLock()
	r := s.redis
	s.mu.RUnlock()
	if r != nil {
		return r.Get(ctx, key)
	}
	return "", false, nil
}

// apply connects to the snapshot's Redis when its settings changed.
func (a *Agent) applySharedStore(snap *ir.Snapshot) error {
	s := a.shared
	var cfg *ir.Redis
	if snap.SharedStorage != nil {
		cfg = snap.SharedStorage.Redis
	}
	s.mu.RLock()
	same := reflect.DeepEqual(cfg, s.cfg)
	s.mu.RUnlock()
	if same {
		return nil
	}
	next, err := sharedstore.FromSnapshot(snap, a.opts.Logger)
	if err != nil {
		return err
	}
	s.mu.Lock()
	old := s.redis
	s.redis, s.cfg = next, cfg
	s.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	if next != nil {
		a.log.Info("shared storage: redis", "address", cfg.Address, "db", cfg.DB)
	}
	return nil
}

// startSharedStore registers the storage metrics; the store itself exists
// from newAgent on, as policies capture it when they are built.
func (a *Agent) startSharedStore(context.Context) (stopFunc, error) {
	if err := sharedstore.Register(a.registry); err != nil {
		return nil, err
	}
	return a.closeSharedStore, nil
}

func (a *Agent) closeSharedStore(context.Context) error {
	a.shared.mu.Lock()
	defer a.shared.mu.Unlock()
	if a.shared.redis != nil {
		return a.shared.redis.Close()
	}
	return nil
}
