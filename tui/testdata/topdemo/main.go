// Command topdemo runs `flexgw top` against a stand-in gateway: a real
// stats.Stats fed with synthetic traffic through the data-plane hooks and
// the access-log sink, served on a real admin socket. The tmux test, the
// benchmark script and the screenshot script use it; it is not shipped.
//
//	topdemo                       stand-in gateway and the TUI in one process
//	topdemo -serve 127.0.0.1:0    only the gateway side; prints "admin http://..."
//	topdemo -admin http://...     only the TUI
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/observe"
	"github.com/flexgw/flexgw/stats"
	"github.com/flexgw/flexgw/stats/topapi"
	"github.com/flexgw/flexgw/tui"
)

func main() {
	serveAddr := flag.String("serve", "", "only run the stand-in gateway's admin API on this address")
	admin := flag.String("admin", "", "only run the TUI against this admin URL")
	refresh := flag.Duration("refresh", time.Second, "TUI refresh interval")
	apis := flag.Int("apis", 6, "number of APIs")
	routes := flag.Int("routes", 3, "routes per API")
	rps := flag.Int("rps", 400, "synthetic requests per second")
	once := flag.Bool("once", false, "print one frame and exit")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "topdemo:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "topdemo:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	url := *admin
	if url == "" {
		addr := *serveAddr
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		u, err := gateway(ctx, addr, *apis, *routes, *rps)
		if err != nil {
			fmt.Fprintln(os.Stderr, "topdemo:", err)
			os.Exit(1)
		}
		url = u
		if *serveAddr != "" {
			fmt.Println("admin", url)
			<-ctx.Done()
			return
		}
		if *once {
			// Let a couple of seconds of traffic accumulate.
			time.Sleep(2 * time.Second)
		}
	}
	if err := tui.Run(ctx, tui.Options{AdminURL: url, Refresh: *refresh, Once: *once}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// gateway starts the stand-in and returns its admin URL.
func gateway(ctx context.Context, addr string, nAPIs, nRoutes, rps int) (string, error) {
	snap := &ir.Snapshot{Version: 4}
	l := &ir.Listener{Name: "http_0.0.0.0_8081"}
	names := []string{"orders", "users", "payments", "catalog", "search", "auth", "inventory", "shipping"}
	type target struct{ api, route, svc, ep string }
	var targets []target
	for i := range nAPIs {
		name := names[i%len(names)]
		if i >= len(names) {
			name = fmt.Sprintf("%s-%d", name, i/len(names))
		}
		svc := &ir.Service{Name: name + "-svc", Namespace: "default", Endpoints: []ir.Endpoint{{Host: "10.0.0." + fmt.Sprint(10+i%200), Port: 8080}, {Host: "10.0.1." + fmt.Sprint(10+i%200), Port: 8080}}}
		snap.Services = append(snap.Services, svc)
		a := &ir.API{Name: name, Namespace: "default", BasePath: "/" + name}
		for r := range nRoutes {
			rt := &ir.Route{Name: fmt.Sprintf("%s-%d", name, r), Destinations: []ir.Destination{{Service: svc.Key(), Weight: 100}}}
			a.Routes = append(a.Routes, rt)
			targets = append(targets, target{a.Key(), rt.Name, svc.Key(), svc.Endpoints[r%2].Address()})
		}
		l.APIs = append(l.APIs, a)
	}
	snap.Listeners = []*ir.Listener{l}
	// sent is bumped by the traffic goroutine and read by the admin API's.
	var sent atomic.Uint64
	s := stats.New(stats.Options{
		Snapshot: func() *ir.Snapshot { return snap },
		Status: func() stats.Status {
			return stats.Status{GatewayID: "gw-demo-1", Version: "v0.1.0-dev", DataPlane: "builtin", SnapshotVersion: snap.Version, ReloadOK: true, ReloadAt: time.Now()}
		},
		Kernel: func() topapi.Kernel {
			return topapi.Kernel{Reason: "stand-in gateway: no eBPF probe loaded"}
		},
		Pipeline: func() topapi.Pipeline {
			return topapi.Pipeline{Mode: "in-process", Exporters: []topapi.Exporter{
				{Name: "splunk", Type: "splunk", Sent: sent.Load(), QueueDepth: rand.IntN(20)},
				{Name: "sumo", Type: "sumologic", Sent: sent.Load() / 2, Retries: sent.Load() / 100, LastError: "stand-in: 503 from collector"},
			}}
		},
	})
	h := s.Hooks()
	for i, t := range targets {
		h.EndpointHealth(t.svc, t.ep, i%17 != 5)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("listen %s: %w", addr, err)
	}
	go http.Serve(ln, s.Handler())
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		methods := []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for range max(rps/100, 1) {
				t := targets[rand.IntN(len(targets))]
				status := 200
				switch x := rand.IntN(100); {
				case x < 2:
					status = 503
				case x < 6:
					status = 404
				case x < 8:
					status = 429
				}
				// Latency drifts slowly so sparklines have a shape.
				base := 2 + 3*float64((n/100)%7)
				up := time.Duration((base + rand.ExpFloat64()*base) * float64(time.Millisecond))
				total := up + time.Duration(200+rand.IntN(300))*time.Microsecond
				_, done := h.Request(ctx, observe.RequestInfo{API: t.api, Route: t.route, Method: "GET"})
				rec := &accesslog.Record{
					StartTime: time.Now(), Method: methods[rand.IntN(len(methods))], Path: fmt.Sprintf("/%s/%d", t.route, rand.IntN(1000)),
					Protocol: "HTTP/1.1", ResponseCode: status, Duration: total, UpstreamServiceTime: up, UpstreamHost: t.ep,
					UpstreamCluster: t.svc, APIInstance: t.api, Route: t.route, GatewayID: "gw-demo-1",
					RequestID: fmt.Sprintf("req-%08x", rand.Uint32()), TraceID: fmt.Sprintf("%016x%016x", rand.Uint64(), rand.Uint64()),
				}
				if status == 429 {
					rec.Policy, rec.PolicyOutcome = "rate-limiting-flex", "denied"
				}
				done(rec, observe.Timings{Total: total, Upstream: up, Service: t.svc})
				s.Write(rec)
				sent.Add(1)
			}
		}
	}()
	return "http://" + ln.Addr().String(), nil
}
