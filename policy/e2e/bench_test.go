package e2e_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
			var ps []*ir.Policy
			if c.cfg != nil {
				ps = append(ps, pol("rate-limiting-flex", 50, c.cfg))
			}
			s := snapshotWith(b, up, ps...)
			var shared policy.SharedStore
			redisNow := func() redisStats { return redisStats{} }
			if c.redis {
				srv := redistest.Start(b)
				redisNow = redisStatsReader(b, srv.Addr)
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
			cpu0, r0 := processCPUTime(), redisNow()
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
			cpu, r1 := processCPUTime()-cpu0, redisNow()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "proc-µs/req")
			if c.redis {
				b.ReportMetric(float64((r1.cpu-r0.cpu).Microseconds())/float64(b.N), "redis-µs/req")
				b.ReportMetric(float64(r1.reads-r0.reads)/float64(b.N), "redis-reads/req")
			}
		})
	}
}

// processCPUTime is the CPU (user + system) this process has used.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisStats reads what the redis-server at addr has done so far: CPU
// (main thread and children, from INFO cpu) and read events, i.e. requests
// or pipelines received (INFO stats total_reads_processed).
type redisStats struct {
	cpu   time.Duration
	reads int64
}

func redisStatsReader(b *testing.B, addr string) func() redisStats {
	c := redis.NewClient(&redis.Options{Addr: addr})
	b.Cleanup(func() { c.Close() })
	return func() redisStats {
		info, err := c.Info(context.Background(), "cpu", "stats").Result()
		if err != nil {
			b.Fatalf("redis INFO: %v", err)
		}
		var st redisStats
		for _, line := range strings.Split(info, "\r\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			switch k {
			case "used_cpu_sys", "used_cpu_user":
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					b.Fatalf("redis INFO %s: %v", line, err)
				}
				st.cpu += time.Duration(f * float64(time.Second))
			case "total_reads_processed":
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					b.Fatalf("redis INFO %s: %v", line, err)
				}
				st.reads = n
			}
		}
		return st
	}
}
