package e2e_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
	"github.com/flexgw/flexgw/sharedstore"
	"github.com/flexgw/flexgw/sharedstore/redistest"
)

// BenchmarkThroughput drives concurrent requests through the real data
// plane to a real upstream: with no policy, with a per-replica rate limit,
// and with a clusterizable rate limit counted in a real Redis. Compare the
// req/s metrics (bench/policy/run.sh prints the ratio).
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
			var ps []*ir.Policy
			if c.cfg != nil {
				ps = append(ps, pol("rate-limiting-flex", 50, c.cfg))
			}
			s := snapshotWith(b, up, ps...)
			var shared policy.SharedStore
			if c.redis {
				srv := redistest.Start(b)
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
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
