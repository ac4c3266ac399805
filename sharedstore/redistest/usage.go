package redistest

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Usage is what a redis-server has done so far, for benchmarks that charge
// Redis's own work to the requests that caused it.
type Usage struct {
	// CPU is the server's user + system CPU (INFO cpu).
	CPU time.Duration
	// Reads counts read events: requests or pipelines received (INFO
	// stats total_reads_processed), i.e. round trips.
	Reads int64
}

// Usage reads the server's counters (INFO cpu and stats).
func (s *Server) Usage(tb testing.TB) Usage {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	info, err := c.Info(context.Background(), "cpu", "stats").Result()
	if err != nil {
		tb.Fatalf("redis INFO: %v", err)
	}
	var u Usage
	for _, line := range strings.Split(info, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "used_cpu_sys", "used_cpu_user":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatalf("redis INFO %s: %v", line, err)
			}
			u.CPU += time.Duration(f * float64(time.Second))
		case "total_reads_processed":
			if u.Reads, err = strconv.ParseInt(v, 10, 64); err != nil {
				tb.Fatalf("redis INFO %s: %v", line, err)
			}
		}
	}
	return u
}

// ProcessCPU is the CPU (user + system) the calling process has used: the
// other half of what a benchmark next to a redis-server costs.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
