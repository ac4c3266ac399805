package sharedstore_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/sharedstore"
	"github.com/flexgw/flexgw/sharedstore/redistest"
)

func newStore(t *testing.T, addr string) *sharedstore.Redis {
	t.Helper()
	s, err := sharedstore.NewRedis(&ir.Redis{Address: addr}, sharedstore.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Two replicas lease quota from one Redis while 16 callers each hammer
// them until denied: every position 1..limit is handed out exactly once in
// the whole cluster, so together they admit exactly the limit, and fewer
// round trips than requests were needed.
func TestAcquireTwoReplicasAdmitExactlyTheLimit(t *testing.T) {
	srv := redistest.Start(t)
	replicas := []*sharedstore.Redis{newStore(t, srv.Addr), newStore(t, srv.Addr)}
	const limit = 5000
	seen := make([]atomic.Int32, limit+1)
	var admitted, calls atomic.Int64
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func(s *sharedstore.Redis) {
			defer wg.Done()
			for {
				calls.Add(1)
				n, left, err := s.Acquire(context.Background(), "flexgw:rl:lease", limit, 60000)
				if err != nil {
					t.Error(err)
					return
				}
				if left <= 0 || left > 60000 {
					t.Errorf("time left %d outside (0, 60000]", left)
				}
				if n > limit {
					return
				}
				if n < 1 {
					t.Errorf("position %d", n)
					return
				}
				seen[n].Add(1)
				admitted.Add(1)
			}
		}(replicas[i%2])
	}
	wg.Wait()
	if admitted.Load() != limit {
		t.Fatalf("admitted %d, want exactly %d", admitted.Load(), limit)
	}
	for n := 1; n <= limit; n++ {
		if seen[n].Load() != 1 {
			t.Fatalf("position %d handed out %d times", n, seen[n].Load())
		}
	}
	trips := replicas[0].RoundTrips() + replicas[1].RoundTrips()
	if trips*4 > calls.Load() {
		t.Fatalf("%d round trips for %d calls: quota was not leased", trips, calls.Load())
	}
	// Exhausted: denied locally until the window ends, without asking Redis.
	before := replicas[0].RoundTrips()
	for range 100 {
		if n, _, err := replicas[0].Acquire(context.Background(), "flexgw:rl:lease", limit, 60000); err != nil || n <= limit {
			t.Fatalf("after exhaustion: position %d, err %v", n, err)
		}
	}
	if got := replicas[0].RoundTrips() - before; got != 0 {
		t.Fatalf("%d round trips for denials in an exhausted window", got)
	}
}

// A leased position is never used once Redis dropped the window: after the
// key expires, the next Acquire opens a new window at position 1 even
// though the replica still held positions of the old one.
func TestAcquireLeaseEndsWithTheWindow(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Addr)
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer raw.Close()
	ctx := context.Background()
	const key, limit, window = "flexgw:rl:short", 1 << 20, 1000
	for round := range 3 {
		// Grow the lease (calls in quick succession double it) until this
		// replica holds positions Redis has counted but it has not used.
		held := false
		for i := 0; i < 100000 && !held; i++ {
			n, _, err := s.Acquire(ctx, key, limit, window)
			if err != nil {
				t.Fatal(err)
			}
			c, err := raw.Get(ctx, key).Int64()
			held = err == nil && c > n+1
		}
		if !held {
			t.Fatalf("round %d: the replica never held leased positions", round)
		}
		// Wait (on the condition, not a fixed time) for Redis to drop
		// the window.
		deadline := time.Now().Add(30 * time.Second)
		for raw.Exists(ctx, key).Val() == 1 {
			if time.Now().After(deadline) {
				t.Fatal("window never expired")
			}
			time.Sleep(10 * time.Millisecond)
		}
		n, _, err := s.Acquire(ctx, key, limit, window)
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("round %d: first Acquire after the window ended got position %d of the old window, want 1 of a new one", round, n)
		}
		// Let this window end before the next round starts afresh.
		for raw.Exists(ctx, key).Val() == 1 {
			if time.Now().After(deadline) {
				t.Fatal("window never expired")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// Small limits are not leased: each request takes its own position, so a
// limit of 100 split across two replicas admits exactly 100 even when one
// replica's traffic stops half way.
func TestAcquireSmallLimitNotLeased(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newStore(t, srv.Addr), newStore(t, srv.Addr)
	ctx := context.Background()
	for i := 1; i <= 50; i++ {
		if n, _, err := a.Acquire(ctx, "k", 100, 60000); err != nil || n != int64(i) {
			t.Fatalf("a: position %d (err %v), want %d", n, err, i)
		}
	}
	for i := 51; i <= 100; i++ {
		if n, _, err := b.Acquire(ctx, "k", 100, 60000); err != nil || n != int64(i) {
			t.Fatalf("b: position %d (err %v), want %d", n, err, i)
		}
	}
	if n, _, _ := b.Acquire(ctx, "k", 100, 60000); n <= 100 {
		t.Fatalf("101st request admitted at position %d", n)
	}
}

// Redis down: Acquire fails like Incr (the policy applies failOpen), and
// callers waiting for the failed refill do not hang.
func TestAcquireRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Addr)
	srv.Stop()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := s.Acquire(context.Background(), "k", 10000, 60000); err == nil {
				t.Error("Acquire succeeded with Redis down")
			}
		}()
	}
	wg.Wait()
}
