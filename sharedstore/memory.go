package sharedstore

import (
	"context"
	"sync"
	"time"
)

// Memory is the in-process fixed-window store used when the configuration
// declares no shared storage: quotas are then per replica. Expired windows
// are swept lazily, so memory stays bounded by the keys of live windows.
type Memory struct {
	mu        sync.Mutex
	windows   map[string]*window
	now       func() time.Time
	lastSweep time.Time
}

type window struct {
	count int64
	ends  time.Time
}

// NewMemory returns an empty in-process store.
func NewMemory() *Memory {
	return &Memory{windows: map[string]*window{}, now: time.Now}
}

// Incr implements policy.SharedStore.
func (m *Memory) Incr(_ context.Context, key string, ttlMillis int64) (int64, int64, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.lastSweep) > time.Second {
		m.sweep(now)
	}
	w := m.windows[key]
	if w == nil || !now.Before(w.ends) {
		w = &window{ends: now.Add(time.Duration(ttlMillis) * time.Millisecond)}
		m.windows[key] = w
	}
	w.count++
	return w.count, w.ends.Sub(now).Milliseconds(), nil
}

func (m *Memory) sweep(now time.Time) {
	m.lastSweep = now
	for k, w := range m.windows {
		if !now.Before(w.ends) {
			delete(m.windows, k)
		}
	}
}
