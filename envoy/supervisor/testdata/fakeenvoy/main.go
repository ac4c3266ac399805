// Command fakeenvoy is a stand-in for Envoy in the supervisor's tests
// (Envoy cannot be installed on the build machines). It reads the admin
// address from the bootstrap given with -c, as Envoy does, and serves the
// admin endpoints the supervisor uses, written to Envoy's documented
// behaviour:
//
//	GET  /ready                    200 "LIVE" once started
//	POST /drain_listeners?graceful starts draining: downstream_cx_active
//	                               falls to 0 over a few polls
//	GET  /stats?filter=...         "http.<prefix>.downstream_cx_active: N"
//	GET  /stats/prometheus         a minimal Prometheus text page
//	GET  /clusters                 no clusters
//	POST /crash                    test hook: exit(1) now
//	POST /test/requests            test hook: write access-log lines for
//	                               the requests described (accesslog.go)
//
// It logs in Envoy's format, appends its events to $FAKE_ENVOY_EVENTS, and
// ignores SIGTERM when $FAKE_ENVOY_IGNORE_TERM is set.
//
// With $FAKE_ENVOY_ADS set it also plays Envoy's ADS client: it dials the
// bootstrap's xDS cluster (TCP or unix pipe), subscribes to listeners and
// clusters with its node, ACKs every response ("ack <type> <version>"
// events) and, like Envoy's init manager, answers /ready only once both
// have arrived.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	var bootstrap string
	for i, a := range os.Args {
		if a == "-c" && i+1 < len(os.Args) {
			bootstrap = os.Args[i+1]
		}
	}
	b, err := os.ReadFile(bootstrap)
	if err != nil {
		logf("critical", "cannot read bootstrap %q: %v", bootstrap, err)
		os.Exit(1)
	}
	var cfg struct {
		Node struct {
			ID      string `yaml:"id"`
			Cluster string `yaml:"cluster"`
		} `yaml:"node"`
		StaticResources struct {
			Clusters []struct {
				LoadAssignment struct {
					Endpoints []struct {
						LbEndpoints []struct {
							Endpoint struct {
								Address struct {
									SocketAddress struct {
										Address   string `yaml:"address"`
										PortValue int    `yaml:"port_value"`
									} `yaml:"socket_address"`
									Pipe struct {
										Path string `yaml:"path"`
									} `yaml:"pipe"`
								} `yaml:"address"`
							} `yaml:"endpoint"`
						} `yaml:"lb_endpoints"`
					} `yaml:"endpoints"`
				} `yaml:"load_assignment"`
			} `yaml:"clusters"`
		} `yaml:"static_resources"`
		Admin struct {
			Address struct {
				SocketAddress struct {
					Address   string `yaml:"address"`
					PortValue int    `yaml:"port_value"`
				} `yaml:"socket_address"`
			} `yaml:"address"`
		} `yaml:"admin"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		logf("critical", "bad bootstrap: %v", err)
		os.Exit(1)
	}
	sa := cfg.Admin.Address.SocketAddress
	addr := net.JoinHostPort(sa.Address, strconv.Itoa(sa.PortValue))
	event("start " + strconv.Itoa(os.Getpid()))
	logf("info", "starting fake envoy, admin %s", addr)
	logf("warning", "this is a stand-in, not Envoy")

	var mu sync.Mutex
	active, draining := 3, false
	initialized := make(chan struct{})
	if os.Getenv("FAKE_ENVOY_ADS") == "" {
		close(initialized)
	} else {
		ep := cfg.StaticResources.Clusters[0].LoadAssignment.Endpoints[0].LbEndpoints[0].Endpoint.Address
		target := "unix://" + ep.Pipe.Path
		if ep.Pipe.Path == "" {
			target = net.JoinHostPort(ep.SocketAddress.Address, strconv.Itoa(ep.SocketAddress.PortValue))
		}
		go runADS(target, cfg.Node.ID, cfg.Node.Cluster, initialized)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-initialized:
			fmt.Fprintln(w, "LIVE")
		default:
			http.Error(w, "PRE_INITIALIZING", http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("POST /drain_listeners", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.URL.Query()["graceful"]; !ok {
			http.Error(w, "want graceful", http.StatusBadRequest)
			return
		}
		mu.Lock()
		draining = true
		mu.Unlock()
		event("drain")
		fmt.Fprintln(w, "OK")
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := active
		if draining && active > 0 {
			active-- // connections finish one by one while draining
		}
		mu.Unlock()
		fmt.Fprintf(w, "http.ingress.downstream_cx_active: %d\nlistener.0.0.0.0_8081.downstream_cx_active: %d\n", n, n)
	})
	mux.HandleFunc("GET /stats/prometheus", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# TYPE envoy_server_live gauge\nenvoy_server_live{} 1\n")
	})
	mux.HandleFunc("GET /clusters", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /test/requests", serveTestRequests)
	mux.HandleFunc("POST /crash", func(w http.ResponseWriter, r *http.Request) {
		logf("critical", "crashing on request")
		event("crash")
		os.Exit(1)
	})
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		logf("critical", "admin listen %s: %v", addr, err)
		os.Exit(1)
	}
	go http.Serve(lis, mux)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	for range sigs {
		event("sigterm")
		if os.Getenv("FAKE_ENVOY_IGNORE_TERM") != "" {
			logf("warning", "ignoring SIGTERM")
			continue
		}
		logf("info", "exiting on SIGTERM")
		writeAtExit()
		os.Exit(0)
	}
}

func logf(level, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s][%d][%s][main] %s\n", time.Now().Format("2006-01-02 15:04:05.000"), os.Getpid(), level, fmt.Sprintf(format, args...))
}

func event(e string) {
	path := os.Getenv("FAKE_ENVOY_EVENTS")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintln(f, e)
}

// runADS is the stand-in's ADS client: subscribe to listeners and clusters,
// ACK everything, reconnect when the stream breaks.
// adsUp says whether the ADS stream is established right now. The agent's
// gRPC server also carries the rate-limit and ext_authz services Envoy
// calls for requests in flight, so it must stay up until Envoy has exited.
var adsUp atomic.Bool

func runADS(target, nodeID, cluster string, initialized chan struct{}) {
	var once sync.Once
	for {
		err := adsStream(target, nodeID, cluster, func() { once.Do(func() { close(initialized) }) })
		adsUp.Store(false)
		logf("warning", "ADS stream to %s ended: %v; reconnecting", target, err)
		time.Sleep(100 * time.Millisecond)
	}
}

func adsStream(target, nodeID, cluster string, ready func()) error {
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(context.Background())
	if err != nil {
		return err
	}
	const (
		ldsType = "type.googleapis.com/envoy.config.listener.v3.Listener"
		cdsType = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	)
	node := &corev3.Node{Id: nodeID, Cluster: cluster, UserAgentName: "envoy"}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: cdsType}); err != nil {
		return err
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: ldsType}); err != nil {
		return err
	}
	got := map[string]bool{}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		adsUp.Store(true)
		logf("info", "received %d %s resources, version %s", len(resp.Resources), resp.TypeUrl, resp.VersionInfo)
		if resp.TypeUrl == ldsType {
			learnAccessLog(resp.Resources)
		}
		if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resp.TypeUrl, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}); err != nil {
			return err
		}
		event("ack " + resp.TypeUrl[strings.LastIndexByte(resp.TypeUrl, '.')+1:] + " " + resp.VersionInfo)
		got[resp.TypeUrl] = true
		if got[ldsType] && got[cdsType] {
			ready()
		}
	}
}
