package sharedstore_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/sharedstore"
	"github.com/flexgw/flexgw/sharedstore/redistest"
)

// BenchmarkRedisIncr is concurrent increments of one key (a rate limit
// without keySelector) and of many keys against a real redis-server, at
// several numbers of concurrent callers per core. Besides ns/op it reports
// the CPU one increment costs this process (proc-µs/op) and redis-server
// (redis-µs/op), and the reads Redis served per increment (round trips).
func BenchmarkRedisIncr(b *testing.B) {
	for _, keys := range []int{1, 64} {
		for _, par := range []int{1, 8} {
			b.Run(fmt.Sprintf("keys=%d/par=%d", keys, par), func(b *testing.B) {
				srv := redistest.Start(b)
				s, err := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{PoolSize: 64})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				names := make([]string, keys)
				for i := range names {
					names[i] = "flexgw:rl:bench:" + strconv.Itoa(i)
				}
				stats := redisStatsReader(b, srv.Addr)
				ctx := context.Background()
				if _, _, err := s.Incr(ctx, "warm", 60000); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.SetParallelism(par)
				b.ResetTimer()
				cpu0, r0 := processCPUTime(), stats()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						if _, _, err := s.Incr(ctx, names[i%keys], 3600000); err != nil {
							b.Error(err)
							return
						}
						i++
					}
				})
				cpu, r1 := processCPUTime()-cpu0, stats()
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "proc-µs/op")
				b.ReportMetric(float64((r1.cpu-r0.cpu).Microseconds())/float64(b.N), "redis-µs/op")
				b.ReportMetric(float64(r1.reads-r0.reads)/float64(b.N), "reads/op")
			})
		}
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

// redisStats is what a redis-server has done so far: CPU (INFO cpu) and
// read events, i.e. requests or pipelines received (INFO stats).
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
