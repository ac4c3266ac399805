// Command proxy benchmarks flexgw's built-in data plane against nginx as
// the equivalent reverse proxy in front of the same upstream.
//
// The upstream is a separate nginx serving a fixed 13-byte body with
// `return 200`: the cheapest possible upstream, so the proxies (not the
// upstream) dominate the CPU both runs share. Both proxies keep upstream
// and client connections alive (nginx: `keepalive 64`, HTTP/1.1,
// unlimited keepalive_requests; flexgw: its pool), log nothing, and are
// driven by the same `wrk -t2 -c64 -d10s --latency` after a 2s warm-up.
// flexgw runs as a child process (this binary with -serve) on a Local Mode
// config directory compiled by ir.LoadDir, exactly as the agent would.
//
// It prints req/s, p50/p99 latency, CPU time per request (user+system
// from /proc, which unlike req/s does not depend on what else the machine
// runs) and peak RSS (VmHWM; nginx: master plus workers), then the
// flexgw/nginx ratios. With -rounds N the two alternate N times and the
// best run of each is kept, which tames a noisy shared machine.
//
//	go run ./bench/proxy                      # the comparison
//	go run ./bench/proxy -rounds 3 -with-access-log
//	go run ./bench/proxy -serve DIR           # only flexgw's data plane on DIR
//
// Needs nginx (Debian nginx-light) and wrk on PATH.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/dataplane"
	"github.com/flexgw/flexgw/ir"
)

func main() {
	serve := flag.String("serve", "", "run only the data plane on this config directory")
	accessLog := flag.String("access-log", "off", "access log for -serve: path, - or off")
	duration := flag.Duration("d", 10*time.Second, "wrk duration per run")
	conns := flag.Int("c", 64, "wrk connections")
	threads := flag.Int("t", 2, "wrk threads")
	rounds := flag.Int("rounds", 1, "alternate nginx/flexgw runs this many times; the best run of each is reported")
	withLog := flag.Bool("with-access-log", false, "also run flexgw with its access log to a file")
	cpuProfile := flag.String("cpuprofile", "", "with -serve: write a CPU profile here on exit")
	flag.Parse()
	if *serve != "" {
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				fmt.Fprintln(os.Stderr, "cpuprofile:", err)
				os.Exit(1)
			}
			_ = pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
		if err := serveDir(*serve, *accessLog); err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		return
	}
	b := bench{duration: *duration, conns: *conns, threads: *threads}
	if err := b.run(*rounds, *withLog); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// serveDir runs the data plane on dir until SIGTERM/SIGINT.
func serveDir(dir, accessLog string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := ir.LoadDir(dir, ir.CompileOptions{Version: 1})
	if err != nil {
		return err
	}
	opts := dataplane.Options{GatewayID: "bench", Logger: log.With("component", "dataplane")}
	if accessLog != "off" {
		w, err := accesslog.NewFileWriter(accessLog)
		if err != nil {
			return err
		}
		defer w.Close()
		opts.AccessLog = w
	}
	dp := dataplane.New(opts)
	if err := dp.Apply(s); err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return dp.Shutdown(ctx)
}

type bench struct {
	duration       time.Duration
	conns, threads int
	dir            string
	upstreamPort   int
	procs          []*exec.Cmd
}

type result struct {
	name     string
	rps      float64
	requests int64
	// cpuPerReq is the proxy's CPU time (user+system) per request: unlike
	// req/s it does not depend on what else the machine is running.
	cpuPerReq time.Duration
	p50, p99  time.Duration
	rssKiB    int64
	errors    string
}

func (b *bench) run(rounds int, withLog bool) (err error) {
	for _, tool := range []string{"nginx", "wrk"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (apt-get install nginx-light wrk): %w", tool, err)
		}
	}
	b.dir, err = os.MkdirTemp("", "flexgw-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(b.dir)
	defer b.stopAll()

	b.upstreamPort = freePort()
	if _, err := b.startNginx("upstream", fmt.Sprintf(`
worker_processes 1;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:%d;
    location / { default_type text/plain; return 200 "hello, world\n"; }
  }
}`, b.upstreamPort), b.upstreamPort); err != nil {
		return err
	}

	var best = map[string]result{}
	keep := func(r result) {
		if old, ok := best[r.name]; !ok || r.rps > old.rps {
			best[r.name] = r
		}
	}
	for i := 0; i < rounds; i++ {
		r, err := b.runNginx()
		if err != nil {
			return err
		}
		keep(r)
		r, err = b.runFlexgw("flexgw", "off")
		if err != nil {
			return err
		}
		keep(r)
		if withLog {
			r, err = b.runFlexgw("flexgw+log", filepath.Join(b.dir, "access.log"))
			if err != nil {
				return err
			}
			keep(r)
		}
	}

	ng := best["nginx"]
	fmt.Printf("\nproxy benchmark: wrk -t%d -c%d -d%s --latency, GET / (13-byte body), upstream nginx on loopback, %d CPUs\n\n",
		b.threads, b.conns, b.duration, numCPU())
	fmt.Printf("%-12s %12s %10s %10s %12s %10s   %s\n", "proxy", "req/s", "p50", "p99", "CPU/request", "peak RSS", "errors")
	names := []string{"nginx", "flexgw"}
	if withLog {
		names = append(names, "flexgw+log")
	}
	for _, n := range names {
		r := best[n]
		fmt.Printf("%-12s %12.0f %10s %10s %12s %6.1f MiB   %s\n", n, r.rps, r.p50, r.p99, r.cpuPerReq, float64(r.rssKiB)/1024, r.errors)
	}
	fg := best["flexgw"]
	fmt.Printf("\nflexgw/nginx: req/s %.2fx (target >= 0.5x)  p99 %.2fx (target <= 2x)  CPU/request %.2fx  RSS %.1f MiB (target <= 60 MiB)\n",
		fg.rps/ng.rps, float64(fg.p99)/float64(ng.p99), float64(fg.cpuPerReq)/float64(ng.cpuPerReq), float64(fg.rssKiB)/1024)
	return nil
}

func (b *bench) runNginx() (result, error) {
	port := freePort()
	cmd, err := b.startNginx("proxy", fmt.Sprintf(`
worker_processes auto;
events { worker_connections 4096; }
http {
  access_log off;
  # Like flexgw, never close a busy client connection.
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:%d; keepalive 64; }
  server {
    listen 127.0.0.1:%d;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}`, b.upstreamPort, port), port)
	if err != nil {
		return result{}, err
	}
	defer stop(cmd)
	return b.measure("nginx", port, cmd.Process.Pid, true)
}

func (b *bench) runFlexgw(name, accessLog string) (result, error) {
	port := freePort()
	cfgDir := filepath.Join(b.dir, "conf.d-"+strconv.Itoa(port))
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		return result{}, err
	}
	cfg := fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: bench
spec:
  address: http://127.0.0.1:%d
  services:
    upstream:
      address: http://127.0.0.1:%d
`, port, b.upstreamPort)
	if err := os.WriteFile(filepath.Join(cfgDir, "api.yaml"), []byte(cfg), 0o644); err != nil {
		return result{}, err
	}
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	cmd := exec.Command(self, "-serve", cfgDir, "-access-log", accessLog)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	b.procs = append(b.procs, cmd)
	defer stop(cmd)
	if err := waitHTTP(port); err != nil {
		return result{}, fmt.Errorf("flexgw: %w", err)
	}
	return b.measure(name, port, cmd.Process.Pid, false)
}

// measure warms up, runs wrk and reads peak RSS.
func (b *bench) measure(name string, port, pid int, withChildren bool) (result, error) {
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if _, err := b.wrk(url, 2*time.Second); err != nil {
		return result{}, err
	}
	cpu0 := cpuTime(pid, withChildren)
	out, err := b.wrk(url, b.duration)
	if err != nil {
		return result{}, err
	}
	cpu := cpuTime(pid, withChildren) - cpu0
	r, err := parseWrk(out)
	if err != nil {
		return result{}, fmt.Errorf("%s: %w\n%s", name, err, out)
	}
	r.name = name
	if r.requests > 0 {
		r.cpuPerReq = cpu / time.Duration(r.requests)
	}
	r.rssKiB = peakRSS(pid, withChildren)
	return r, nil
}

func (b *bench) wrk(url string, d time.Duration) (string, error) {
	cmd := exec.Command("wrk", "-t"+strconv.Itoa(b.threads), "-c"+strconv.Itoa(b.conns),
		"-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("wrk: %w\n%s", err, out)
	}
	return string(out), nil
}

var (
	reRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reTotal   = regexp.MustCompile(`(\d+) requests in`)
	reLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	reErrors  = regexp.MustCompile(`(?m)^\s+(Socket errors:.*|Non-2xx or 3xx responses:.*)$`)
)

func parseWrk(out string) (result, error) {
	var r result
	m := reRPS.FindStringSubmatch(out)
	if m == nil {
		return r, errors.New("no Requests/sec in wrk output")
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	if m := reTotal.FindStringSubmatch(out); m != nil {
		r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	for _, l := range reLatency.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(l[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[l[3]]
		d := time.Duration(v * float64(unit))
		if l[1] == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	var errs []string
	for _, e := range reErrors.FindAllStringSubmatch(out, -1) {
		errs = append(errs, strings.TrimSpace(e[1]))
	}
	r.errors = strings.Join(errs, "; ")
	if r.errors == "" {
		r.errors = "none"
	}
	return r, nil
}

// startNginx runs nginx in the foreground with conf in its own prefix.
func (b *bench) startNginx(name, conf string, port int) (*exec.Cmd, error) {
	prefix := filepath.Join(b.dir, "nginx-"+name+"-"+strconv.Itoa(port))
	if err := os.MkdirAll(filepath.Join(prefix, "logs"), 0o755); err != nil {
		return nil, err
	}
	full := fmt.Sprintf("daemon off;\npid %s/nginx.pid;\nerror_log %s/logs/error.log;\n%s\n", prefix, prefix, conf)
	// Temp paths nginx-light wants writable, inside the prefix.
	full = strings.Replace(full, "http {", fmt.Sprintf("http {\n  client_body_temp_path %[1]s/body;\n  proxy_temp_path %[1]s/proxy;\n  fastcgi_temp_path %[1]s/fcgi;\n  uwsgi_temp_path %[1]s/uwsgi;\n  scgi_temp_path %[1]s/scgi;", prefix), 1)
	path := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(path, []byte(full), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("nginx", "-p", prefix, "-c", path)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("nginx %s: %w", name, err)
	}
	b.procs = append(b.procs, cmd)
	if err := waitHTTP(port); err != nil {
		return nil, fmt.Errorf("nginx %s: %w (see %s/logs/error.log)", name, err, prefix)
	}
	return cmd, nil
}

func (b *bench) stopAll() {
	for _, c := range b.procs {
		stop(c)
	}
}

// stop ends a process we started (SIGTERM, then SIGKILL) and reaps it.
func stop(c *exec.Cmd) {
	if c.Process == nil || c.ProcessState != nil {
		return
	}
	_ = c.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.Process.Kill()
		<-done
	}
}

func waitHTTP(port int) error {
	deadline := time.Now().Add(15 * time.Second)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no 200 from %s within 15s", url)
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// peakRSS is VmHWM of pid (plus its children, for nginx's workers), KiB.
func peakRSS(pid int, withChildren bool) int64 {
	total := vmHWM(pid)
	if withChildren {
		kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		for _, f := range strings.Fields(string(kids)) {
			if c, err := strconv.Atoi(f); err == nil {
				total += vmHWM(c)
			}
		}
	}
	return total
}

// cpuTime is the user+system CPU time of pid (plus its children).
func cpuTime(pid int, withChildren bool) time.Duration {
	pids := []int{pid}
	if withChildren {
		kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		for _, f := range strings.Fields(string(kids)) {
			if c, err := strconv.Atoi(f); err == nil {
				pids = append(pids, c)
			}
		}
	}
	var ticks int64
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// Fields after the ")" that closes the command name; utime and
		// stime are fields 14 and 15 of the whole line.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + st
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ is 100 on Linux
}

func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return 0
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}
