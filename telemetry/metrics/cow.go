package metrics

import (
	"sync"
	"sync/atomic"
)

// cowMap is a copy-on-write map for the hot path: reads are one atomic load
// and one map lookup with no lock and no allocation; writes copy the map.
// It suits caches whose keys come from configuration (bounded, written
// once, read on every request).
type cowMap[K comparable, V any] struct {
	mu sync.Mutex
	m  atomic.Pointer[map[K]V]
}

// get returns the value for k, creating it with mk on first use. mk runs
// under the write lock, so it is called at most once per key.
func (c *cowMap[K, V]) get(k K, mk func() V) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
	}
	n := make(map[K]V, c.lenLocked(old)+1)
	if old != nil {
		for ok, ov := range *old {
			n[ok] = ov
		}
	}
	v := mk()
	n[k] = v
	c.m.Store(&n)
	return v
}

// deleteIf removes every entry for which drop returns true and returns the
// removed entries.
func (c *cowMap[K, V]) deleteIf(drop func(K, V) bool) map[K]V {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old == nil {
		return nil
	}
	removed := map[K]V{}
	n := make(map[K]V, len(*old))
	for k, v := range *old {
		if drop(k, v) {
			removed[k] = v
			continue
		}
		n[k] = v
	}
	if len(removed) > 0 {
		c.m.Store(&n)
	}
	return removed
}

func (c *cowMap[K, V]) lenLocked(m *map[K]V) int {
	if m == nil {
		return 0
	}
	return len(*m)
}
