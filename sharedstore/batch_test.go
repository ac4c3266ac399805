package sharedstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/sharedstore"
	"github.com/flexgw/flexgw/sharedstore/redistest"
)

// pause makes the Redis at addr hold write commands (every increment) for
// d, so the round trip in flight is slow. It returns once the pause is on.
func pause(t *testing.T, addr string, d time.Duration) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	if err := c.Do(context.Background(), "CLIENT", "PAUSE", d.Milliseconds(), "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// givenCounts records, from many goroutines, the counts Incr gave per key,
// and fails the test when one is given twice.
type givenCounts struct {
	mu   sync.Mutex
	seen map[string]map[int64]bool
}

func (g *givenCounts) add(t *testing.T, key string, n int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		g.seen = map[string]map[int64]bool{}
	}
	if g.seen[key] == nil {
		g.seen[key] = map[int64]bool{}
	}
	if g.seen[key][n] {
		t.Errorf("%s: count %d given twice", key, n)
	}
	g.seen[key][n] = true
}

// Many concurrent callers on several keys, with a batch bound smaller than
// the concurrency: every key counts 1..N once each.
func TestRedisBatchedIncrDistinctCounts(t *testing.T) {
	srv := redistest.Start(t)
	s, err := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{MaxBatch: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const keys, perKey = 4, 200
	var mu sync.Mutex
	seen := map[string]map[int64]int{}
	var wg sync.WaitGroup
	for k := 0; k < keys; k++ {
		seen[fmt.Sprintf("k%d", k)] = map[int64]int{}
	}
	for k := 0; k < keys; k++ {
		key := fmt.Sprintf("k%d", k)
		for i := 0; i < perKey; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, left, err := s.Incr(context.Background(), key, 60000)
				if err != nil {
					t.Error(err)
					return
				}
				if left <= 0 || left > 60000 {
					t.Errorf("remaining %d outside (0, 60000]", left)
				}
				mu.Lock()
				seen[key][n]++
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	for key, counts := range seen {
		for n := int64(1); n <= perKey; n++ {
			if counts[n] != 1 {
				t.Fatalf("%s: count %d seen %d times", key, n, counts[n])
			}
		}
	}
	if rt := s.RoundTrips(); rt < keys*perKey/7 {
		t.Fatalf("%d round trips for %d calls with MaxBatch 7", rt, keys*perKey)
	}
}

// While every flusher's round trip is slow, later callers queue and share
// the next one.
func TestRedisSlowRoundTripBatchesLaterCallers(t *testing.T) {
	for _, inFlight := range []int{1, 3} {
		t.Run(fmt.Sprintf("in-flight-%d", inFlight), func(t *testing.T) {
			testSlowRoundTripBatches(t, inFlight)
		})
	}
}

func testSlowRoundTripBatches(t *testing.T, inFlight int) {
	srv := redistest.Start(t)
	s, _ := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{IOTimeout: 10 * time.Second, MaxInFlight: inFlight})
	defer s.Close()
	ctx := context.Background()
	// Warm up: connection dialled, script cached.
	if _, _, err := s.Incr(ctx, "warm", 60000); err != nil {
		t.Fatal(err)
	}
	base := s.RoundTrips()

	pause(t, srv.Addr, 500*time.Millisecond)
	// One call per flusher, each held in flight by the pause.
	first := make(chan int64, inFlight)
	for i := 0; i < inFlight; i++ {
		go func() {
			n, _, err := s.Incr(ctx, "b", 60000)
			if err != nil {
				t.Error(err)
			}
			first <- n
		}()
		waitFor(t, "call in flight", func() bool { return s.RoundTrips() == base+int64(i)+1 && s.Queued() == 0 })
	}

	const later = 50
	counts := make(chan int64, later)
	var wg sync.WaitGroup
	for i := 0; i < later; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, _, err := s.Incr(ctx, "b", 60000)
			if err != nil {
				t.Error(err)
			}
			counts <- n
		}()
	}
	waitFor(t, "later calls queued", func() bool { return s.Queued() == later })
	if rt := s.RoundTrips(); rt != base+int64(inFlight) {
		t.Fatalf("round trips %d while the first are in flight, want %d", rt, base+int64(inFlight))
	}
	wg.Wait()
	close(counts)
	seen := map[int64]bool{}
	for i := 0; i < inFlight; i++ {
		n := <-first
		if n < 1 || n > int64(inFlight) || seen[n] {
			t.Fatalf("first call count %d (duplicate or out of 1..%d)", n, inFlight)
		}
		seen[n] = true
	}
	for n := range counts {
		if n <= int64(inFlight) || n > int64(inFlight+later) || seen[n] {
			t.Fatalf("later call count %d (duplicate or out of %d..%d)", n, inFlight+1, inFlight+later)
		}
		seen[n] = true
	}
	if rt := s.RoundTrips(); rt != base+int64(inFlight)+1 {
		t.Fatalf("%d later callers took %d round trips, want 1", later, rt-base-int64(inFlight))
	}
}

// An idle store sends a call at once: no batching delay, one round trip
// per sequential call.
func TestRedisIdleIncrNotDelayed(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{})
	defer s.Close()
	ctx := context.Background()
	for i := 1; i <= 20; i++ {
		if n, _, err := s.Incr(ctx, "idle", 60000); err != nil || n != int64(i) {
			t.Fatalf("incr %d: n=%d err=%v", i, n, err)
		}
	}
	if rt := s.RoundTrips(); rt > 21 { // +1: the first call's NOSCRIPT retry
		t.Fatalf("%d round trips for 20 sequential calls", rt)
	}
}

// A queued caller whose context ends returns at once and its increment is
// never sent; the store stays usable (no cooldown).
func TestRedisIncrCancellation(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{IOTimeout: 10 * time.Second, MaxInFlight: 1})
	defer s.Close()
	ctx := context.Background()
	if _, _, err := s.Incr(ctx, "warm", 60000); err != nil {
		t.Fatal(err)
	}
	base := s.RoundTrips()

	// Already cancelled: fails without being sent.
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.Incr(done, "c", 60000); !errors.Is(err, context.Canceled) || !errors.Is(err, sharedstore.ErrUnavailable) {
		t.Fatalf("cancelled context: %v", err)
	}

	pause(t, srv.Addr, 400*time.Millisecond)
	// In flight, held by the pause.
	first := make(chan int64, 1)
	go func() {
		n, _, err := s.Incr(ctx, "c", 60000)
		if err != nil {
			t.Error(err)
		}
		first <- n
	}()
	waitFor(t, "first call in flight", func() bool { return s.RoundTrips() == base+1 && s.Queued() == 0 })

	// Queued behind it, one timing out and one cancelled before sent.
	qctx, qcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer qcancel()
	cctx, ccancel := context.WithCancel(ctx)
	cerr := make(chan error, 1)
	go func() {
		_, _, err := s.Incr(cctx, "c", 60000)
		cerr <- err
	}()
	start := time.Now()
	_, _, err := s.Incr(qctx, "c", 60000)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, sharedstore.ErrUnavailable) {
		t.Fatalf("queued caller: %v, want deadline exceeded (ErrUnavailable)", err)
	}
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Fatalf("queued caller returned after %v, want about its 50ms deadline", d)
	}
	ccancel()
	select {
	case err := <-cerr:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled queued caller: %v", err)
		}
	case <-time.After(300 * time.Millisecond):
		t.Fatal("queued caller did not return on cancellation")
	}
	if n := <-first; n != 1 {
		t.Fatalf("first call count %d, want 1", n)
	}

	// The abandoned calls were never sent, so this one is 2.
	n, _, err := s.Incr(ctx, "c", 60000)
	if err != nil {
		t.Fatalf("store unusable after cancellations: %v", err)
	}
	if n != 2 {
		t.Fatalf("count %d after one sent and two abandoned calls, want 2", n)
	}
}

// The script cache emptied under a running store (SCRIPT FLUSH, or a
// restarted Redis): concurrent calls fall back to EVAL and count once each.
func TestRedisBatchNoScriptFallback(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{})
	defer s.Close()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	ctx := context.Background()
	total := int64(0)
	for round := 0; round < 3; round++ {
		if err := admin.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var given givenCounts
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, _, err := s.Incr(ctx, "ns", 60000)
				if err != nil {
					t.Error(err)
					return
				}
				given.add(t, "ns", n)
			}()
		}
		wg.Wait()
		total += 50
		if seen := given.seen["ns"]; len(seen) != 50 {
			t.Fatalf("round %d: %d distinct counts", round, len(seen))
		}
	}
	if v, _ := admin.Get(ctx, "ns").Int64(); v != total {
		t.Fatalf("counter %d, want %d", v, total)
	}
}

// Close fails calls made after it and does not hang.
func TestRedisIncrAfterClose(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{})
	if _, _, err := s.Incr(context.Background(), "x", 60000); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, _, err := s.Incr(context.Background(), "x", 60000); !errors.Is(err, sharedstore.ErrUnavailable) {
		t.Fatalf("after close: %v", err)
	}
	// Never used for Incr: Close must not wait for a flusher.
	u, _ := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{})
	u.Close()
}

// Queued calls for one key share one script run: Redis adds their number at
// once, and each caller still gets its own count.
func TestRedisBatchAddsOncePerKey(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{IOTimeout: 10 * time.Second, MaxInFlight: 1})
	defer s.Close()
	ctx := context.Background()
	if _, _, err := s.Incr(ctx, "warm", 60000); err != nil {
		t.Fatal(err)
	}
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	scriptRuns := func() int64 {
		stats, err := admin.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		for _, cmd := range []string{"evalsha", "eval"} {
			var calls int64
			for _, line := range strings.Split(stats, "\r\n") {
				if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
					fmt.Sscanf(rest, "%d", &calls)
				}
			}
			total += calls
		}
		return total
	}
	base := s.RoundTrips()
	runs0 := scriptRuns()

	pause(t, srv.Addr, 500*time.Millisecond)
	first := make(chan error, 1)
	go func() { _, _, err := s.Incr(ctx, "x", 60000); first <- err }()
	waitFor(t, "first call in flight", func() bool { return s.RoundTrips() == base+1 && s.Queued() == 0 })

	perKey := map[string]int{"x": 30, "y": 20}
	var given givenCounts
	var wg sync.WaitGroup
	for key, n := range perKey {
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, _, err := s.Incr(ctx, key, 60000)
				if err != nil {
					t.Error(err)
					return
				}
				given.add(t, key, c)
			}()
		}
	}
	waitFor(t, "later calls queued", func() bool { return s.Queued() == 50 })
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// x: the first call (1) and the 30 queued (2..31); y: 1..20.
	for key, lo := range map[string]int64{"x": 2, "y": 1} {
		for c := lo; c < lo+int64(perKey[key]); c++ {
			if !given.seen[key][c] {
				t.Errorf("%s: count %d not given (seen %v)", key, c, given.seen[key])
			}
		}
	}
	if rt := s.RoundTrips(); rt != base+2 {
		t.Errorf("%d round trips, want 2 (the first call, then one pipeline)", rt-base)
	}
	if runs := scriptRuns() - runs0; runs != 3 {
		t.Errorf("Redis ran the script %d times, want 3 (the first call, then one per key)", runs)
	}
}

// Callers that give up mid-flight mixed with callers that wait: every
// waiting caller gets its own count (a call object given back for reuse
// never carries another caller's reply), and none exceeds the counter.
func TestRedisIncrCancelledCallsMixedWithWaiting(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{MaxBatch: 5})
	defer s.Close()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	ctx := context.Background()
	var given givenCounts
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				if (g+i)%3 == 0 {
					// Gives up at once or soon: may or may not be counted.
					cctx, cancel := context.WithCancel(ctx)
					if i%2 == 0 {
						cancel()
					} else {
						go cancel()
					}
					_, _, _ = s.Incr(cctx, "mix", 60000)
					cancel()
					continue
				}
				n, _, err := s.Incr(ctx, "mix", 60000)
				if err != nil {
					t.Error(err)
					return
				}
				given.add(t, "mix", n)
			}
		}()
	}
	wg.Wait()
	seen := given.seen["mix"]
	total, err := admin.Get(ctx, "mix").Int64()
	if err != nil {
		t.Fatal(err)
	}
	for n := range seen {
		if n < 1 || n > total {
			t.Fatalf("count %d outside 1..%d", n, total)
		}
	}
	if int64(len(seen)) > total {
		t.Fatalf("%d counts given, counter %d", len(seen), total)
	}
}
