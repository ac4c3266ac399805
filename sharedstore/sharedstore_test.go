package sharedstore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/sharedstore"
	"github.com/flexgw/flexgw/sharedstore/redistest"
)

func TestRedisSharedWindowAcrossClients(t *testing.T) {
	srv := redistest.Start(t)
	a, err := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, _ := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{})
	defer b.Close()

	// 100 concurrent increments split over two clients count 1..100 once each.
	var wg sync.WaitGroup
	seen := make([]atomic.Int32, 101)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			n, left, err := s.Incr(context.Background(), "k", 60000)
			if err != nil {
				t.Error(err)
				return
			}
			if left <= 0 || left > 60000 {
				t.Errorf("remaining %d outside (0, 60000]", left)
			}
			seen[n].Add(1)
		}(i)
	}
	wg.Wait()
	for n := 1; n <= 100; n++ {
		if seen[n].Load() != 1 {
			t.Fatalf("count %d seen %d times", n, seen[n].Load())
		}
	}
}

func TestRedisWindowExpires(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{})
	defer s.Close()
	ctx := context.Background()
	if n, _, _ := s.Incr(ctx, "w", 50); n != 1 {
		t.Fatalf("first count %d", n)
	}
	// A new window opens once the old one has expired: poll for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, _, err := s.Incr(ctx, "w", 50)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("window never expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRedisOutageAndRecovery(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{Cooldown: 20 * time.Millisecond})
	defer s.Close()
	ctx := context.Background()
	if _, _, err := s.Incr(ctx, "o", 60000); err != nil {
		t.Fatal(err)
	}
	before := counter("incr")
	srv.Stop()
	_, _, err := s.Incr(ctx, "o", 60000)
	if !errors.Is(err, sharedstore.ErrUnavailable) {
		t.Fatalf("want ErrUnavailable, got %v", err)
	}
	if after := counter("incr"); after <= before {
		t.Fatalf("flexgw_shared_storage_errors_total{op=incr} did not grow: %v -> %v", before, after)
	}
	srv.Restart()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n, _, err := s.Incr(ctx, "o", 60000)
		if err == nil {
			// The restarted Redis has no data: a fresh window.
			if n != 1 {
				t.Fatalf("count after restart %d, want 1", n)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRedisGetSet(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{})
	defer s.Close()
	ctx := context.Background()
	if _, found, err := s.Get(ctx, "missing"); err != nil || found {
		t.Fatalf("missing key: found=%v err=%v", found, err)
	}
	if err := s.Set(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, found, err := s.Get(ctx, "k"); err != nil || !found || v != "v" {
		t.Fatalf("got %q %v %v", v, found, err)
	}
}

func TestMemoryWindow(t *testing.T) {
	m := sharedstore.NewMemory()
	ctx := context.Background()
	for i := int64(1); i <= 3; i++ {
		n, left, err := m.Incr(ctx, "k", 60000)
		if err != nil || n != i || left <= 0 {
			t.Fatalf("incr %d: n=%d left=%d err=%v", i, n, left, err)
		}
	}
	if n, _, _ := m.Incr(ctx, "other", 60000); n != 1 {
		t.Fatalf("independent key count %d", n)
	}
}

func TestNewRedisRequiresAddress(t *testing.T) {
	if _, err := sharedstore.NewRedis(&ir.Redis{}, sharedstore.RedisOptions{}); err == nil {
		t.Fatal("want error for empty address")
	}
}

func counter(op string) float64 {
	var m dto.Metric
	if err := sharedstore.StorageErrors.WithLabelValues(op).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func TestRedisPassword(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "s3cret")
	good, _ := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr, Password: "s3cret", DB: 2}, sharedstore.RedisOptions{})
	defer good.Close()
	if _, _, err := good.Incr(context.Background(), "k", 1000); err != nil {
		t.Fatalf("with password: %v", err)
	}
	bad, _ := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr, Password: "wrong"}, sharedstore.RedisOptions{})
	defer bad.Close()
	if _, _, err := bad.Incr(context.Background(), "k", 1000); !errors.Is(err, sharedstore.ErrUnavailable) {
		t.Fatalf("wrong password: %v, want ErrUnavailable", err)
	}
}

func TestFromSnapshot(t *testing.T) {
	s, err := sharedstore.FromSnapshot(&ir.Snapshot{}, nil)
	if err != nil || s != nil {
		t.Fatalf("no shared storage: %v %v", s, err)
	}
	s, err = sharedstore.FromSnapshot(&ir.Snapshot{SharedStorage: &ir.SharedStorage{Redis: &ir.Redis{Address: "127.0.0.1:1"}}}, nil)
	if err != nil || s == nil {
		t.Fatalf("redis: %v %v", s, err)
	}
	s.Close()
	if _, err := sharedstore.FromSnapshot(&ir.Snapshot{SharedStorage: &ir.SharedStorage{Redis: &ir.Redis{Address: "x:1", TLS: &ir.RedisTLS{TrustedCA: "not pem"}}}}, nil); err == nil {
		t.Fatal("bad CA accepted")
	}
}
