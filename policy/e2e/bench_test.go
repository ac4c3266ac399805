package e2e_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
	"github.com/flexgw/flexgw/sharedstore"
	"github.com/flexgw/flexgw/sharedstore/redistest"
)

// BenchmarkThroughput drives concurrent requests through the real data
// plane to a real upstream: with no policy, with a per-replica rate limit,
// and with a clusterizable rate limit counted in a real Redis. Compare the
// req/s metrics (bench/policy/run.sh prints the ratio). On a shared
// machine the req/s of one run swings with other load; the CPU each request
// costs moves much less: proc-µs/req is this process's CPU (load generator,
// data plane and upstream together), redis-µs/req redis-server's, and
// redis-reads/req how many reads (round trips) Redis served per request.
func BenchmarkThroughput(b *testing.B) {
	limit := map[string]any{"rateLimits": []map[string]any{{"maximumRequests": 1 << 40, "timePeriodInMilliseconds": 3600000}}}
	local := map[string]any{"rateLimits": limit["rateLimits"], "clusterizable": false}
	for _, c := range []struct {
		name  string
		cfg   map[string]any
		redis bool
	}{
		{"no-policy", nil, false},
		{"rate-limit-local", local, false},
		{"rate-limit-redis", limit, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			up, _ := upstream(b)
			var ps []testutil.Policy
			if c.cfg != nil {
				ps = append(ps, pol("rate-limiting-flex", 50, c.cfg))
			}
			s := snapshotWith(b, up, ps...)
			var shared policy.SharedStore
			redisNow := func() redistest.Usage { return redistest.Usage{} }
			if c.redis {
				srv := redistest.Start(b)
				redisNow = func() redistest.Usage { return srv.Usage(b) }
				store, err := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{PoolSize: 64})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { store.Close() })
				shared = store
			}
			base := start(b, s, shared, nil)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxIdleConns: 64}}
			b.Cleanup(client.CloseIdleConnections)
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			cpu0, r0 := redistest.ProcessCPU(), redisNow()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := client.Get(base + "/x")
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusOK {
						b.Errorf("status %d", res.StatusCode)
						return
					}
				}
			})
			cpu, r1 := redistest.ProcessCPU()-cpu0, redisNow()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "proc-µs/req")
			if c.redis {
				b.ReportMetric(float64((r1.CPU-r0.CPU).Microseconds())/float64(b.N), "redis-µs/req")
				b.ReportMetric(float64(r1.Reads-r0.Reads)/float64(b.N), "redis-reads/req")
			}
		})
	}
}

// BenchmarkAWSSignature: one GET through the real data plane to a plain
// upstream, unsigned and signed by native-aws-signature-flex at dispatch
// (the upstream does not verify: the cost is the gateway's).
func BenchmarkAWSSignature(b *testing.B) {
	for _, signed := range []bool{false, true} {
		name := "unsigned"
		if signed {
			name = "sigv4"
		}
		b.Run(name, func(b *testing.B) {
			up, _ := upstream(b)
			var ps []testutil.Policy
			if signed {
				ps = append(ps, pol("native-aws-signature-flex", 50, map[string]any{"serviceName": "execute-api", "region": "us-east-1",
					"authenticationMode": "inline", "inlineCredentialProvider": map[string]string{"accessKeyId": "AKIDBENCH", "secretAccessKey": "bench-secret"}}))
			}
			base := start(b, snapshotWith(b, up, ps...), nil, nil)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			b.Cleanup(client.CloseIdleConnections)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				res, err := client.Get(base + "/orders/1?x=2")
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
		})
	}
}

// BenchmarkHTTPCachingDataPlane: one GET through the real built-in data
// plane, proxied to a loopback upstream and, with http-caching-flex, a
// cache hit served from the gateway's memory (the upstream is asked once).
// A hit must cost less than the proxied request: that is the policy's
// point.
func BenchmarkHTTPCachingDataPlane(b *testing.B) {
	for _, cached := range []bool{false, true} {
		name := "proxied"
		if cached {
			name = "cache-hit"
		}
		b.Run(name, func(b *testing.B) {
			var hits atomic.Int32
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Cache-Control", "public, max-age=600")
				_, _ = io.WriteString(w, `{"id":"A-1001","status":"shipped","items":3}`)
			}))
			b.Cleanup(up.Close)
			var ps []testutil.Policy
			if cached {
				ps = append(ps, pol("http-caching-flex", 50, map[string]any{}))
			}
			base := start(b, snapshotWith(b, up, ps...), nil, nil)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			b.Cleanup(client.CloseIdleConnections)
			get := func() {
				res, err := client.Get(base + "/orders/1")
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
			get()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				get()
			}
			b.StopTimer()
			if n := hits.Load(); cached && n != 1 {
				b.Fatalf("the upstream was asked %d times: not served from the cache", n)
			}
		})
	}
}
