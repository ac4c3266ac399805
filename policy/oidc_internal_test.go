package policy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestOIDCDiscoveryRefreshDoesNotBlock: once metadata is known, a due
// refresh runs in the background; requests keep the known metadata even
// while the provider hangs, and pick up the new one when it answers.
func TestOIDCDiscoveryRefreshDoesNotBlock(t *testing.T) {
	var calls atomic.Int32
	hang := make(chan struct{})
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if n > 1 {
			select { // the refresh hangs until the test lets it go
			case <-hang:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": srv.URL, "introspection_endpoint": srv.URL + "/introspect-" + string(rune('0'+n))})
	}))
	t.Cleanup(srv.Close)
	d := &oidcDiscovery{c: &compiledOIDC{issuer: srv.URL, timeout: time.Minute}, client: srv.Client()}
	meta, _, err := d.get(context.Background())
	if err != nil || meta.IntrospectionEndpoint != srv.URL+"/introspect-1" {
		t.Fatalf("first fetch: %v %v", meta, err)
	}
	d.mu.Lock()
	d.until = time.Now().Add(-time.Second) // due
	d.mu.Unlock()
	for range 3 { // the provider hangs; every call answers at once from what is known
		if meta, _, err = d.get(context.Background()); err != nil || meta.IntrospectionEndpoint != srv.URL+"/introspect-1" {
			t.Fatalf("during refresh: %v %v", meta, err)
		}
	}
	close(hang)
	deadline := time.Now().Add(30 * time.Second)
	for {
		meta, _, _ = d.get(context.Background())
		if meta.IntrospectionEndpoint == srv.URL+"/introspect-2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("refreshed metadata never used: %v", meta)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("discovery fetched %d times, want 2 (one refresh)", n)
	}
}
