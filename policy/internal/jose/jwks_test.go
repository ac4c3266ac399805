package jose

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

type jwksStub struct {
	*httptest.Server
	hits atomic.Int32
	fail atomic.Bool
}

func newJWKSStub(t *testing.T) *jwksStub {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "RSA", "kid": "k1",
		"n": b64.EncodeToString(k.N.Bytes()), "e": b64.EncodeToString(big.NewInt(int64(k.E)).Bytes())}}})
	s := &jwksStub{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if s.fail.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		_, _ = w.Write(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An expired set keeps serving while it is refreshed in the background;
// a failing JWKS server is retried with backoff, not on every request.
func TestJWKSCacheStaleWhileRefreshing(t *testing.T) {
	stub := newJWKSStub(t)
	c := &JWKS{URLs: []string{stub.URL}, TTL: 50 * time.Millisecond, RefetchEvery: time.Hour, Client: stub.Client()}
	ctx := context.Background()
	if _, err := c.Lookup(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if stub.hits.Load() != 1 {
		t.Fatalf("hits %d", stub.hits.Load())
	}
	// After the TTL a lookup answers from the cache and refreshes behind.
	waitUntil(t, "the set to expire and be refreshed", func() bool {
		if _, err := c.Lookup(ctx, "k1"); err != nil {
			t.Fatal(err)
		}
		return stub.hits.Load() >= 2
	})

	stub.fail.Store(true)
	before := stub.hits.Load()
	waitUntil(t, "a failed background refresh", func() bool {
		if _, err := c.Lookup(ctx, "k1"); err != nil {
			t.Fatalf("stale keys must keep serving: %v", err)
		}
		return stub.hits.Load() > before
	})
	// Backoff: a burst of lookups right after the failure does not refetch.
	after := stub.hits.Load()
	for i := 0; i < 50; i++ {
		if _, err := c.Lookup(ctx, "k1"); err != nil {
			t.Fatal(err)
		}
	}
	if got := stub.hits.Load(); got > after+1 {
		t.Fatalf("JWKS fetched %d times during backoff", got-after)
	}
}

func TestJWKSCacheFirstFetchFailsFast(t *testing.T) {
	stub := newJWKSStub(t)
	stub.fail.Store(true)
	c := &JWKS{URLs: []string{stub.URL}, TTL: time.Hour, RefetchEvery: time.Hour, Client: stub.Client()}
	ctx := context.Background()
	if _, err := c.Lookup(ctx, "k1"); err == nil {
		t.Fatal("want an error with the JWKS server down")
	}
	for i := 0; i < 10; i++ {
		if _, err := c.Lookup(ctx, "k1"); err == nil {
			t.Fatal("want an error")
		}
	}
	if stub.hits.Load() != 1 {
		t.Fatalf("JWKS fetched %d times; later requests must fail fast during backoff", stub.hits.Load())
	}
	// When the server is back, the next attempt after the backoff succeeds.
	stub.fail.Store(false)
	waitUntil(t, "recovery after backoff", func() bool {
		_, err := c.Lookup(ctx, "k1")
		return err == nil
	})
}
