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
//	POST /crash                    test hook: exit(1) now
//
// It logs in Envoy's format, appends its events to $FAKE_ENVOY_EVENTS, and
// ignores SIGTERM when $FAKE_ENVOY_IGNORE_TERM is set.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
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
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "LIVE") })
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
