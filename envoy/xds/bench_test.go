package xds

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flexgw/flexgw/envoy/translate"
	"github.com/flexgw/flexgw/envoy/translate/translatetest"
	"github.com/flexgw/flexgw/snapshot"
)

// BenchmarkTranslate1000APIs5000Routes: one full translation (target < 1 s).
func BenchmarkTranslate1000APIs5000Routes(b *testing.B) {
	snap := translatetest.BigSnapshot(1000, 5)
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := translate.Translate(snap, translate.Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportCPU(b, cpu0)
	reportRSS(b)
}

// BenchmarkPush1000APIs5000Routes: translate, build and check both
// snapshots, and set them: what one accepted reload costs the agent.
func BenchmarkPush1000APIs5000Routes(b *testing.B) {
	snap := translatetest.BigSnapshot(1000, 5)
	srv, err := NewServer(Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := srv.Push(snap); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportCPU(b, cpu0)
	reportRSS(b)
}

// BenchmarkConfigDirToSnapshot1000APIs: from a changed config directory to a
// new xDS version (read YAML, compile, translate, push); the agent's file
// watcher debounce comes on top.
func BenchmarkConfigDirToSnapshot1000APIs(b *testing.B) {
	dir := b.TempDir()
	var sb strings.Builder
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&sb, `---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: api-%d
spec:
  address: http://0.0.0.0:%d/api-%d
  services:
    svc:
      address: http://10.0.%d.%d:8080
      routes:
`, i, 8000+i%10, i, i/250, i%250+1)
		for r := 0; r < 5; r++ {
			fmt.Fprintf(&sb, "        - rules:\n            - path: /res%d(/.*)?\n              methods: GET|POST\n          config:\n            destinationPath: /v1\n", r)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "apis.yaml"), []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	srv, err := NewServer(Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		snap, err := snapshot.LoadDir(dir, uint64(i+1))
		if err != nil {
			b.Fatal(err)
		}
		if n := len(snap.APIs()); n != 1000 {
			b.Fatalf("%d APIs", n)
		}
		if err := srv.Push(snap); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportCPU(b, cpu0)
	reportRSS(b)
}

// cpuTime is the process's user+system CPU time: on a shared machine it
// measures the work independently of how long the scheduler made it wait.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds CPU milliseconds per operation (all goroutines, GC included).
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// reportRSS adds the process's peak resident set (VmHWM) in MiB.
func reportRSS(b *testing.B) {
	runtime.GC()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
				b.ReportMetric(kb/1024, "peak-RSS-MiB")
			}
		}
	}
}

func TestBigSnapshotTranslates(t *testing.T) {
	res, err := translate.Translate(translatetest.BigSnapshot(20, 5), translate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Envoy.Routes[0].VirtualHosts[0].Routes); n == 0 {
		t.Fatal("no routes")
	}
}
