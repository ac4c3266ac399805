package policy_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

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

func cachingGateway(t *testing.T, up *cacheUpstream, cfg string, env policy.Env) *gateway {
	return newGateway(t, env, &upstream{Server: up.Server}, mkPolicy("http-caching-flex", cfg))
}

func TestHTTPCachingHitsAndDirectives(t *testing.T) {
	up := newCacheUpstream(t)
	g := cachingGateway(t, up, `{"invalidationHeader":"x-cache-control"}`, policy.Env{})
	first := g.get(t, "/a")
	again := g.get(t, "/a")
	if first.body != again.body || up.hits.Load() != 1 {
		t.Fatalf("second GET not served from cache: %q / %q, upstream %d", first.body, again.body, up.hits.Load())
	}
	if again.header.Get("Age") == "" {
		t.Fatal("cached answer without Age")
	}
	if head := g.do(t, http.MethodHead, "/a"); head.status != 200 || up.hits.Load() != 1 {
		t.Fatalf("HEAD not served from the GET entry: %d, upstream %d", head.status, up.hits.Load())
	}

	miss := func(path string, hdr ...string) {
		t.Helper()
		before := up.hits.Load()
		g.get(t, path, hdr...)
		g.get(t, path, hdr...)
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
	if r := g.do(t, http.MethodPost, "/a"); r.status != 200 || strings.Contains(r.body, "answer 1 ") {
		t.Fatalf("POST answered from cache: %s", r.body)
	}

	// s-maxage allows caching an authenticated answer.
	g.get(t, "/k?cc=s-maxage=60", "Authorization", "Bearer alice")
	before := up.hits.Load()
	g.get(t, "/k?cc=s-maxage=60", "Authorization", "Bearer alice")
	if up.hits.Load() != before {
		t.Fatal("s-maxage response to an authenticated request not cached")
	}

	// Request no-cache skips the lookup and refreshes the entry.
	fresh := g.get(t, "/a", "Cache-Control", "no-cache")
	if fresh.body == first.body {
		t.Fatal("request no-cache served from cache")
	}
	if g.get(t, "/a").body != fresh.body {
		t.Fatal("no-cache answer not stored")
	}

	// Invalidation header: one entry, then all.
	g.get(t, "/z")
	before = up.hits.Load()
	g.get(t, "/a", "x-cache-control", "invalidate")
	if up.hits.Load() != before+1 {
		t.Fatal("invalidate did not drop the entry")
	}
	g.get(t, "/a", "x-cache-control", "invalidate-all")
	g.get(t, "/z")
	if up.hits.Load() != before+3 {
		t.Fatal("invalidate-all did not drop every entry")
	}
}

func TestHTTPCachingVaryAndEviction(t *testing.T) {
	up := newCacheUpstream(t)
	g := cachingGateway(t, up, `{"maxCacheEntries":2}`, policy.Env{})
	en := g.get(t, "/v?vary=Accept-Language", "Accept-Language", "en")
	if g.get(t, "/v?vary=Accept-Language", "Accept-Language", "en").body != en.body {
		t.Fatal("same Vary values not served from cache")
	}
	fr := g.get(t, "/v?vary=Accept-Language", "Accept-Language", "fr")
	if !strings.Contains(fr.body, "lang=fr") {
		t.Fatalf("another Vary value got the cached answer: %q", fr.body)
	}
	// FIFO: a third key evicts the first.
	g.get(t, "/1")
	g.get(t, "/2")
	g.get(t, "/3")
	before := up.hits.Load()
	g.get(t, "/1")
	if up.hits.Load() != before+1 {
		t.Fatal("oldest entry not evicted at maxCacheEntries")
	}
}

// distributed: replicas sharing one real redis-server share the cache.
func TestHTTPCachingDistributed(t *testing.T) {
	srv := redistest.Start(t)
	up := newCacheUpstream(t)
	cfg := `{"distributed":true,"ttl":60,"invalidationHeader":"x-inv"}`
	var gws []*gateway
	for range 2 {
		store, err := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		gws = append(gws, cachingGateway(t, up, cfg, policy.Env{Shared: store}))
	}
	a := gws[0].get(t, "/shared")
	b := gws[1].get(t, "/shared")
	if a.body != b.body || up.hits.Load() != 1 {
		t.Fatalf("replica 2 did not serve replica 1's entry: %q / %q (upstream %d)", a.body, b.body, up.hits.Load())
	}
	gws[1].get(t, "/shared", "x-inv", "invalidate")
	if c := gws[0].get(t, "/shared"); c.body == a.body {
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
		err := policy.Check(mkPolicy("http-caching-flex", c.cfg))
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
				ps = append(ps, mkPolicy(c.policy, `{}`))
			}
			g := newGateway(t, policy.Env{}, &upstream{Server: up.Server}, ps...)
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
