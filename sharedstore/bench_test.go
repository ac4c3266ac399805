package sharedstore_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

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
				stats := func() redistest.Usage { return srv.Usage(b) }
				ctx := context.Background()
				if _, _, err := s.Incr(ctx, "warm", 60000); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.SetParallelism(par)
				b.ResetTimer()
				cpu0, r0 := redistest.ProcessCPU(), stats()
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
				cpu, r1 := redistest.ProcessCPU()-cpu0, stats()
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "proc-µs/op")
				b.ReportMetric(float64((r1.CPU-r0.CPU).Microseconds())/float64(b.N), "redis-µs/op")
				b.ReportMetric(float64(r1.Reads-r0.Reads)/float64(b.N), "reads/op")
			})
		}
	}
}
