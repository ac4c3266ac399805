package telemetry_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flexgw/flexgw/dataplane"
	"github.com/flexgw/flexgw/ir"
)

// rawUpstream answers every request on a keep-alive connection with a
// canned response, so the upstream costs as little CPU as possible.
func rawUpstream(b *testing.B) ir.Endpoint {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					// Requests are GETs without a body: read to the blank line.
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"); err != nil {
						return
					}
				}
			}(c)
		}
	}()
	addr := ln.Addr().(*net.TCPAddr)
	return ir.Endpoint{Host: "127.0.0.1", Port: addr.Port}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDataPlane is throughput of the real built-in data plane with
// each telemetry setup, over loopback with a raw keep-alive client and a
// canned upstream (both cheap, in this process). Besides ns/op it reports
// cpu-ns/op, the process CPU per request (gateway, client and upstream),
// which on a shared machine is a steadier basis for the throughput ratio
// than wall time: a CPU-bound gateway's throughput is 1/cpu-ns.
func BenchmarkDataPlane(b *testing.B) {
	ep := rawUpstream(b)
	for _, s := range benchSetups {
		b.Run(s.name, func(b *testing.B) {
			dp := dataplane.New(dataplane.Options{
				Logger: slog.New(slog.DiscardHandler),
				Hooks:  benchHooks(b, s),
			})
			snap := &ir.Snapshot{
				Version: 1,
				Listeners: []*ir.Listener{{Name: "bench", Protocol: ir.HTTP, Host: "127.0.0.1", Port: 0, APIs: []*ir.API{{
					Name: "orders", Namespace: "default", BasePath: "/",
					Routes: []*ir.Route{{Name: "r0", Destinations: []ir.Destination{{Service: "default/up", Weight: 100}}}},
				}}}},
				Services: []*ir.Service{{Name: "up", Namespace: "default", Protocol: ir.HTTP, LB: ir.RoundRobin,
					ConnectTimeout: 2 * time.Second, Endpoints: []ir.Endpoint{ep}}},
			}
			if err := dp.Apply(snap); err != nil {
				b.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = dp.Shutdown(ctx)
			}()
			gw := dp.Addr("127.0.0.1:0")
			const req = "GET /orders/1 HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\n\r\n"
			roundTrip := func(c net.Conn, br *bufio.Reader) error {
				if _, err := io.WriteString(c, req); err != nil {
					return err
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					return err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return &net.AddrError{Err: "status " + resp.Status, Addr: gw}
				}
				return nil
			}
			// Warm up the upstream pool and the label caches.
			{
				c, err := net.Dial("tcp", gw)
				if err != nil {
					b.Fatal(err)
				}
				br := bufio.NewReader(c)
				for i := 0; i < 200; i++ {
					if err := roundTrip(c, br); err != nil {
						b.Fatal(err)
					}
				}
				c.Close()
			}
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.Dial("tcp", gw)
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				br := bufio.NewReader(c)
				for pb.Next() {
					if err := roundTrip(c, br); err != nil {
						if !strings.Contains(err.Error(), "closed") {
							b.Error(err)
						}
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
