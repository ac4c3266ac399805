package policy_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
	"github.com/flexgw/flexgw/sharedstore"
	"github.com/flexgw/flexgw/sharedstore/redistest"
)

// cacheUpstream answers with a counter in the body, so a cached answer is
// told apart from a fresh one; ?cc= sets Cache-Control, ?vary= sets Vary.
type cacheUpstream struct {
	*httptest.Server
	hits atomic.Int32
}

func newCacheUpstream(t testing.TB) *cacheUpstream {
	u := &cacheUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := u.hits.Add(1)
		q := r.URL.Query()
		if v := q.Get("cc"); v != "" {
			w.Header().Set("Cache-Control", v)
		}
		if v := q.Get("vary"); v != "" {
			w.Header().Set("Vary", v)
		}
		if q.Get("cookie") != "" {
			w.Header().Set("Set-Cookie", "session=secret")
		}
		if q.Get("status") == "500" {
			w.WriteHeader(500)
		}
		fmt.Fprintf(w, "answer %d lang=%s", n, r.Header.Get("Accept-Language"))
	}))
	t.Cleanup(u.Close)
	return u
}

func cachingGateway(t *testing.T, up *cacheUpstream, cfg string, env policy.Env) *policytest.Gateway {
	return policytest.NewGateway(t, env, &policytest.Upstream{Server: up.Server}, policytest.Policy("http-caching-flex", cfg))
}

func TestHTTPCachingHitsAndDirectives(t *testing.T) {
	up := newCacheUpstream(t)
	g := cachingGateway(t, up, `{"invalidationHeader":"x-cache-control"}`, policy.Env{})
	first := g.Get(t, "/a")
	again := g.Get(t, "/a")
	if first.Body != again.Body || up.hits.Load() != 1 {
		t.Fatalf("second GET not served from cache: %q / %q, upstream %d", first.Body, again.Body, up.hits.Load())
	}
	if again.Header.Get("Age") == "" {
		t.Fatal("cached answer without Age")
	}
	if head := g.Do(t, http.MethodHead, "/a"); head.Status != 200 || up.hits.Load() != 1 {
		t.Fatalf("HEAD not served from the GET entry: %d, upstream %d", head.Status, up.hits.Load())
	}

	miss := func(path string, hdr ...string) {
		t.Helper()
		before := up.hits.Load()
		g.Get(t, path, hdr...)
		g.Get(t, path, hdr...)
		if up.hits.Load() != before+2 {
			t.Fatalf("%s %v: cached (upstream %d→%d), want no caching", path, hdr, before, up.hits.Load())
		}
	}
	miss("/b?cc=no-store")
	miss("/c?cc=private")
	miss("/d?cc=no-cache")
	miss("/e?cc=max-age=0")
	miss("/f?vary=*")
	miss("/g?cookie=1")                         // a Set-Cookie is never shared
	miss("/h", "Authorization", "Bearer alice") // RFC 9111 §3.5
	miss("/i?status=500")                       // not in responseExpression's list
	miss("/j", "Cache-Control", "no-store")     // request no-store: nothing stored
	if r := g.Do(t, http.MethodPost, "/a"); r.Status != 200 || strings.Contains(r.Body, "answer 1 ") {
		t.Fatalf("POST answered from cache: %s", r.Body)
	}

	// s-maxage allows caching an authenticated answer.
	g.Get(t, "/k?cc=s-maxage=60", "Authorization", "Bearer alice")
	before := up.hits.Load()
	g.Get(t, "/k?cc=s-maxage=60", "Authorization", "Bearer alice")
	if up.hits.Load() != before {
		t.Fatal("s-maxage response to an authenticated request not cached")
	}

	// Request no-cache skips the lookup and refreshes the entry.
	fresh := g.Get(t, "/a", "Cache-Control", "no-cache")
	if fresh.Body == first.Body {
		t.Fatal("request no-cache served from cache")
	}
	if g.Get(t, "/a").Body != fresh.Body {
		t.Fatal("no-cache answer not stored")
	}

	// Invalidation header: one entry, then all.
	g.Get(t, "/z")
	before = up.hits.Load()
	g.Get(t, "/a", "x-cache-control", "invalidate")
	if up.hits.Load() != before+1 {
		t.Fatal("invalidate did not drop the entry")
	}
	g.Get(t, "/a", "x-cache-control", "invalidate-all")
	g.Get(t, "/z")
	if up.hits.Load() != before+3 {
		t.Fatal("invalidate-all did not drop every entry")
	}
}

func TestHTTPCachingVaryAndEviction(t *testing.T) {
	up := newCacheUpstream(t)
	g := cachingGateway(t, up, `{"maxCacheEntries":2}`, policy.Env{})
	en := g.Get(t, "/v?vary=Accept-Language", "Accept-Language", "en")
	if g.Get(t, "/v?vary=Accept-Language", "Accept-Language", "en").Body != en.Body {
		t.Fatal("same Vary values not served from cache")
	}
	fr := g.Get(t, "/v?vary=Accept-Language", "Accept-Language", "fr")
	if !strings.Contains(fr.Body, "lang=fr") {
		t.Fatalf("another Vary value got the cached answer: %q", fr.Body)
	}
	// FIFO: a third key evicts the first.
	g.Get(t, "/1")
	g.Get(t, "/2")
	g.Get(t, "/3")
	before := up.hits.Load()
	g.Get(t, "/1")
	if up.hits.Load() != before+1 {
		t.Fatal("oldest entry not evicted at maxCacheEntries")
	}
}

// distributed: replicas sharing one real redis-server share the cache.
func TestHTTPCachingDistributed(t *testing.T) {
	srv := redistest.Start(t)
	up := newCacheUpstream(t)
	cfg := `{"distributed":true,"ttl":60,"invalidationHeader":"x-inv"}`
	var gws []*policytest.Gateway
	for range 2 {
		store, err := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		gws = append(gws, cachingGateway(t, up, cfg, policy.Env{Shared: store}))
	}
	a := gws[0].Get(t, "/shared")
	b := gws[1].Get(t, "/shared")
	if a.Body != b.Body || up.hits.Load() != 1 {
		t.Fatalf("replica 2 did not serve replica 1's entry: %q / %q (upstream %d)", a.Body, b.Body, up.hits.Load())
	}
	gws[1].Get(t, "/shared", "x-inv", "invalidate")
	if c := gws[0].Get(t, "/shared"); c.Body == a.Body {
		t.Fatal("invalidation on one replica not seen by the other")
	}
}

func TestHTTPCachingValidation(t *testing.T) {
	for _, c := range []struct{ cfg, want string }{
		{`{"maxCacheEntries":0}`, "config.maxCacheEntries: must be > 0"},
		{`{"ttl":-1}`, "config.ttl: must be > 0"},
		{`{"invalidationHeader":"bad header"}`, "config.invalidationHeader:"},
		{`{"responseExpression":"#[[200, 999] contains attributes.statusCode]"}`, "config.responseExpression:"},
		{`{"httpCachingKey":"#[attributes.(]"}`, "config.httpCachingKey"},
	} {
		err := policy.Check(policytest.Policy("http-caching-flex", c.cfg))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.cfg, err, c.want)
		}
	}
}

// BenchmarkHTTPCaching: a cache hit against a request proxied to a
// loopback upstream, each through a real gateway socket.
func BenchmarkHTTPCaching(b *testing.B) {
	up := newCacheUpstream(b)
	for _, c := range []struct{ name, policy string }{{"proxied", ""}, {"hit", "http-caching-flex"}} {
		b.Run(c.name, func(b *testing.B) {
			t := &testing.T{}
			var ps []*ir.Policy
			if c.policy != "" {
				ps = append(ps, policytest.Policy(c.policy, `{}`))
			}
			g := policytest.NewGateway(t, policy.Env{}, &policytest.Upstream{Server: up.Server}, ps...)
			defer g.Close()
			client := g.Client()
			get := func() {
				res, err := client.Get(g.URL + "/bench")
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			get()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				get()
			}
		})
	}
}
