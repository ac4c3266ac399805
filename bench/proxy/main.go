// Command proxy benchmarks flexgw's built-in data plane against nginx as
// the equivalent reverse proxy in front of the same upstream, scenario by
// scenario (scenarios.go): keep-alive small requests with and without an
// access log, a realistic policy chain (against flexgw without one),
// connection per request, 1 KB and 100 KB bodies, TLS keep-alive, new TLS
// connections and HTTP/2.
//
// The upstream is a separate nginx (one worker) answering with `return
// 200` or a static file: the cheapest possible upstream, shared by both
// proxies. Both keep upstream connections alive (nginx: `keepalive 64`;
// flexgw: its pool). HTTP/1.1 load is `wrk -t2 -c64 --latency`, HTTP/2
// load `h2load -c16 -m10` over TLS with ALPN h2, each after a 1 s
// warm-up. flexgw runs as a child process (this binary with -serve) on a
// Local Mode config directory.
//
// Rounds alternate the two proxies of a scenario (the order flips every
// round), and the medians over the rounds are compared. Next to req/s and
// p50/p99 latency it prints the CPU time each proxy spent per request
// (user+system from /proc, nginx's master and workers summed): on a shared
// machine req/s follows whatever else runs, CPU per request much less.
// Where perf can count, it also prints system calls per request (perf
// stat on raw_syscalls:sys_enter, every thread or worker of the proxy).
// Finally flexgw runs once more per profiled scenario with pprof CPU and
// allocation profiles, kept in -out, whose top entries are printed.
//
//	go run ./bench/proxy                                   # everything, 5 rounds
//	go run ./bench/proxy -scenarios keepalive,chain -rounds 3
//	go run ./bench/proxy -baseline /tmp/old-proxy-bench    # also an older build's data plane
//	go run ./bench/proxy -serve DIR                        # only flexgw's data plane on DIR
//
// Needs nginx (Debian nginx-light), wrk and h2load (nghttp2-client).
package main

import (
	"context"
	"crypto/tls"
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
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/agent"
	"github.com/flexgw/flexgw/dataplane"
)

func main() {
	serve := flag.String("serve", "", "run only the data plane on this config directory")
	accessLog := flag.String("access-log", "off", "access log for -serve: path, - or off")
	cpuProfile := flag.String("cpuprofile", "", "with -serve: write a CPU profile here on exit")
	memProfile := flag.String("memprofile", "", "with -serve: write an allocation profile here on exit")
	duration := flag.Duration("d", 5*time.Second, "load duration per run")
	conns := flag.Int("c", 64, "wrk connections")
	threads := flag.Int("t", 2, "wrk threads")
	rounds := flag.Int("rounds", 5, "rounds; each runs every scenario on both proxies, medians are compared")
	only := flag.String("scenarios", "", "comma-separated scenario names (default: all)")
	baseline := flag.String("baseline", "", "another build of this command: its data plane also runs the plain-HTTP scenarios without policies (before/after)")
	out := flag.String("out", "", "directory for profiles and logs (default: a new temp dir, kept)")
	profile := flag.Bool("profile", true, "profile flexgw (CPU, allocations) after the rounds")
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
		if *memProfile != "" {
			runtime.MemProfileRate = 64 << 10
			defer func() {
				if f, err := os.Create(*memProfile); err == nil {
					_ = pprof.Lookup("allocs").WriteTo(f, 0)
					f.Close()
				}
			}()
		}
		if err := serveDir(*serve, *accessLog); err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		return
	}
	b := bench{duration: *duration, conns: *conns, threads: *threads, baseline: *baseline, out: *out}
	var sel []scenario
	for _, sc := range scenarios {
		if *only == "" || slices.Contains(strings.Split(*only, ","), sc.name) {
			sel = append(sel, sc)
		}
	}
	if len(sel) == 0 {
		fmt.Fprintln(os.Stderr, "bench: no scenario matches", *only)
		os.Exit(2)
	}
	if err := b.run(sel, *rounds, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// serveDir runs the data plane on dir until SIGTERM/SIGINT.
func serveDir(dir, accessLog string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := agent.Compile(dir, 1) // what `flexgw run` serves

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
	baseline       string
	out            string
	dir            string
	keyFile        string
	crtFile        string
	upstreamPort   int
	procs          []*exec.Cmd
}

type result struct {
	rps      float64
	requests int64
	// cpuPerReq is the proxy's CPU time (user+system) per request: unlike
	// req/s it does not depend on what else the machine is running.
	cpuPerReq time.Duration
	// sysPerReq is system calls per request (perf stat; 0 without perf).
	sysPerReq float64
	p50, p99  time.Duration
	rssKiB    int64
	errors    string
}

// runner is one proxy of a scenario: "nginx", "flexgw", "flexgw-chain"
// or "baseline" (the -baseline build).
type runner struct {
	sc   scenario
	name string
}

func (b *bench) run(sel []scenario, rounds int, profile bool) (err error) {
	tools := []string{"nginx", "wrk"}
	for _, sc := range sel {
		if sc.h2 {
			tools = append(tools, "h2load")
			break
		}
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (scripts/deps.sh bench installs nginx-light, wrk, nghttp2-client): %w", tool, err)
		}
	}
	b.dir, err = os.MkdirTemp("", "flexgw-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(b.dir)
	defer b.stopAll()
	if b.out == "" {
		if b.out, err = os.MkdirTemp("", "flexgw-bench-out-"); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(b.out, 0o755); err != nil {
		return err
	}
	if b.keyFile, b.crtFile, err = certFiles(b.dir); err != nil {
		return err
	}
	// nginx's workers run as an unprivileged user: the static bodies
	// (and the way to them) must be world-readable.
	if err := os.Chmod(b.dir, 0o755); err != nil {
		return err
	}
	root := filepath.Join(b.dir, "www")
	if err := os.MkdirAll(filepath.Join(root, "b"), 0o755); err != nil {
		return err
	}
	for name, n := range map[string]int{"1k": 1 << 10, "100k": 100 << 10} {
		if err := os.WriteFile(filepath.Join(root, "b", name), []byte(strings.Repeat("x", n)), 0o644); err != nil {
			return err
		}
	}
	b.upstreamPort = freePort()
	if _, err := b.startNginx("upstream", fmt.Sprintf(`
worker_processes 1;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  sendfile on;
  server {
    listen 127.0.0.1:%d;
    default_type text/plain;
    location / { return 200 "hello, world\n"; }
    location /b/ { root %s; }
  }
}`, b.upstreamPort, root), b.upstreamPort, false); err != nil {
		return err
	}

	results := map[string]map[string][]result{} // scenario → runner → rounds
	for i := 0; i < rounds; i++ {
		for _, sc := range sel {
			rs := []runner{{sc, sc.peer}, {sc, "flexgw"}}
			if sc.chain {
				rs[1].name = "flexgw-chain"
			}
			if b.baseline != "" && !sc.chain && !sc.tls {
				rs = append(rs, runner{sc, "baseline"})
			}
			if i%2 == 1 {
				slices.Reverse(rs)
			}
			for _, r := range rs {
				res, err := b.runOne(r, "", "")
				if err != nil {
					return fmt.Errorf("%s/%s: %w", sc.name, r.name, err)
				}
				if results[sc.name] == nil {
					results[sc.name] = map[string][]result{}
				}
				results[sc.name][r.name] = append(results[sc.name][r.name], res)
				fmt.Fprintf(os.Stderr, "round %d %-16s %-13s %9.0f req/s  p99 %-9s CPU/req %-9s syscalls/req %.2f\n", i+1, sc.name, r.name, res.rps, res.p99, res.cpuPerReq, res.sysPerReq)
			}
		}
	}
	b.report(sel, results, rounds)
	if profile {
		return b.profiles(sel)
	}
	return nil
}

func (b *bench) report(sel []scenario, results map[string]map[string][]result, rounds int) {
	fmt.Printf("\nproxy benchmark: medians of %d alternating rounds, %s each, %d CPUs; upstream nginx on loopback\n", rounds, b.duration, numCPU())
	fmt.Printf("HTTP/1.1: wrk -t%d -c%d --latency; HTTP/2: h2load -c16 -m10 (TLS, ALPN h2)\n\n", b.threads, b.conns)
	fmt.Printf("%-17s %-13s %10s %10s %10s %12s %9s %9s   %s\n", "scenario", "proxy", "req/s", "p50", "p99", "CPU/request", "sys/req", "peak RSS", "errors")
	for _, sc := range sel {
		names := []string{sc.peer, "flexgw"}
		if sc.chain {
			names[1] = "flexgw-chain"
		}
		if b.baseline != "" && !sc.chain && !sc.tls {
			names = append(names, "baseline")
		}
		for _, n := range names {
			m := median(results[sc.name][n])
			fmt.Printf("%-17s %-13s %10.0f %10s %10s %12s %9.2f %5.1f MiB   %s\n", sc.name, n, m.rps, m.p50, m.p99, m.cpuPerReq, m.sysPerReq, float64(m.rssKiB)/1024, m.errors)
		}
	}
	fmt.Printf("\n%-17s %-22s %12s %10s %12s   %s\n", "scenario", "ratio", "req/s", "p99", "CPU/request", "target (req/s)")
	for _, sc := range sel {
		peer := median(results[sc.name][sc.peer])
		self := "flexgw"
		if sc.chain {
			self = "flexgw-chain"
		}
		pairs := [][2]string{{self, sc.peer}}
		if b.baseline != "" && !sc.chain && !sc.tls {
			pairs = append(pairs, [2]string{"flexgw", "baseline"})
		}
		for _, p := range pairs {
			a, base := median(results[sc.name][p[0]]), peer
			if p[1] != sc.peer {
				base = median(results[sc.name][p[1]])
			}
			target := fmt.Sprintf(">= %.2fx", sc.target)
			if p[1] == "baseline" {
				target = "(before/after; hardening budget >= 0.98x)"
			}
			fmt.Printf("%-17s %-22s %11.2fx %9.2fx %11.2fx   %s\n", sc.name, p[0]+"/"+p[1],
				a.rps/base.rps, ratio(a.p99, base.p99), ratio(a.cpuPerReq, base.cpuPerReq), target)
		}
	}
	fmt.Println("\nreq/s and latency depend on the machine's other load; CPU/request much less (see the package doc).")
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// median takes each field's median over the rounds independently.
func median(rs []result) result {
	if len(rs) == 0 {
		return result{errors: "no runs"}
	}
	pick := func(get func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		sort.Float64s(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	m := result{
		rps:       pick(func(r result) float64 { return r.rps }),
		p50:       time.Duration(pick(func(r result) float64 { return float64(r.p50) })),
		p99:       time.Duration(pick(func(r result) float64 { return float64(r.p99) })),
		cpuPerReq: time.Duration(pick(func(r result) float64 { return float64(r.cpuPerReq) })),
		sysPerReq: pick(func(r result) float64 { return r.sysPerReq }),
		rssKiB:    int64(pick(func(r result) float64 { return float64(r.rssKiB) })),
	}
	var errs []string
	for _, r := range rs {
		if r.errors != "none" && !slices.Contains(errs, r.errors) {
			errs = append(errs, r.errors)
		}
	}
	m.errors = strings.Join(errs, " | ")
	if m.errors == "" {
		m.errors = "none"
	}
	return m
}

// profiles runs flexgw once more for every selected scenario with CPU
// and allocation profiles, keeps them in b.out and prints the top entries
// of the keep-alive and chain ones (the others are read when a target is
// missed).
func (b *bench) profiles(sel []scenario) error {
	for _, sc := range sel {
		show := sc.name == "keepalive" || sc.name == "chain"
		name := "flexgw"
		if sc.chain {
			name = "flexgw-chain"
		}
		cpu := filepath.Join(b.out, sc.name+".cpu.pprof")
		mem := filepath.Join(b.out, sc.name+".alloc.pprof")
		if _, err := b.runOne(runner{sc, name}, cpu, mem); err != nil {
			return fmt.Errorf("profile %s: %w", sc.name, err)
		}
		if !show {
			continue
		}
		self, _ := os.Executable()
		for _, p := range []struct{ file, index string }{{cpu, "cpu"}, {mem, "alloc_space"}} {
			args := []string{"tool", "pprof", "-top", "-nodecount=20", "-sample_index=" + p.index, self, p.file}
			if p.index == "cpu" {
				args = []string{"tool", "pprof", "-top", "-nodecount=20", self, p.file}
			}
			outp, err := exec.Command("go", args...).CombinedOutput()
			fmt.Printf("\n=== %s: %s profile (%s) ===\n", sc.name, p.index, p.file)
			if err != nil {
				fmt.Printf("go tool pprof: %v\n", err)
			}
			fmt.Print(string(outp))
		}
	}
	fmt.Printf("\nprofiles kept in %s (go tool pprof -http=: FILE)\n", b.out)
	return nil
}

// runOne starts r's proxy, measures it and stops it.
func (b *bench) runOne(r runner, cpuProf, memProf string) (result, error) {
	port := freePort()
	logFile := filepath.Join(b.dir, "access-"+strconv.Itoa(port)+".log")
	defer os.Remove(logFile)
	var cmd *exec.Cmd
	var err error
	withChildren := false
	switch r.name {
	case "nginx":
		cmd, err = b.startNginx("proxy", nginxProxyConfig(r.sc, port, b.upstreamPort, b.keyFile, b.crtFile, logFile), port, r.sc.tls)
		withChildren = true
	default:
		cmd, err = b.startFlexgw(r, port, logFile, cpuProf, memProf)
	}
	if err != nil {
		return result{}, err
	}
	defer stop(cmd)
	return b.measure(r.sc, port, cmd.Process.Pid, withChildren)
}

func (b *bench) startFlexgw(r runner, port int, logFile, cpuProf, memProf string) (*exec.Cmd, error) {
	cfgDir := filepath.Join(b.dir, "conf.d-"+strconv.Itoa(port))
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		return nil, err
	}
	sc := r.sc
	sc.chain = r.name == "flexgw-chain"
	cfg, err := flexgwConfig(sc, port, b.upstreamPort, b.keyFile, b.crtFile)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "api.yaml"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	bin, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if r.name == "baseline" {
		bin = b.baseline
	}
	al := "off"
	if sc.log {
		al = logFile
	}
	args := []string{"-serve", cfgDir, "-access-log", al}
	if cpuProf != "" {
		args = append(args, "-cpuprofile", cpuProf, "-memprofile", memProf)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b.procs = append(b.procs, cmd)
	if err := waitHTTP(port, sc.tls); err != nil {
		stop(cmd)
		return nil, fmt.Errorf("flexgw: %w", err)
	}
	return cmd, nil
}

// measure warms up, runs the load and reads CPU time and peak RSS.
func (b *bench) measure(sc scenario, port, pid int, withChildren bool) (result, error) {
	scheme := "http"
	if sc.tls {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, port, sc.path)
	if _, err := b.load(sc, url, time.Second); err != nil {
		return result{}, err
	}
	cpu0 := cpuTime(pid, withChildren)
	sys := countSyscalls(procPids(pid, withChildren), b.duration)
	r, err := b.load(sc, url, b.duration)
	if err != nil {
		return result{}, err
	}
	cpu := cpuTime(pid, withChildren) - cpu0
	if r.requests > 0 {
		r.cpuPerReq = cpu / time.Duration(r.requests)
		if n := sys(); n >= 0 {
			r.sysPerReq = float64(n) / float64(r.requests)
		}
	}
	r.rssKiB = peakRSS(pid, withChildren)
	return r, nil
}

// load runs wrk (HTTP/1.1) or h2load (HTTP/2) against url for d.
func (b *bench) load(sc scenario, url string, d time.Duration) (result, error) {
	secs := strconv.Itoa(max(1, int(d.Seconds())))
	if sc.h2 {
		logFile := filepath.Join(b.dir, "h2load.log")
		defer os.Remove(logFile)
		cmd := exec.Command("h2load", "-D", secs, "-c16", "-m10", "-t"+strconv.Itoa(b.threads), "--log-file="+logFile, url)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return result{}, fmt.Errorf("h2load: %w\n%s", err, out)
		}
		return parseH2load(string(out), logFile)
	}
	args := []string{"-t" + strconv.Itoa(b.threads), "-c" + strconv.Itoa(b.conns), "-d" + secs + "s", "--latency"}
	if sc.close {
		args = append(args, "-H", "Connection: close")
	}
	if sc.chain {
		args = append(args, "-H", "Authorization: Bearer "+chainToken())
	}
	out, err := exec.Command("wrk", append(args, url)...).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	return parseWrk(string(out))
}

var (
	reRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reTotal   = regexp.MustCompile(`(\d+) requests in`)
	reLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	reErrors  = regexp.MustCompile(`(?m)^\s+(Socket errors:.*|Non-2xx or 3xx responses:.*)$`)
	reH2RPS   = regexp.MustCompile(`finished in [0-9.]+\w+, ([0-9.]+) req/s`)
	reH2Done  = regexp.MustCompile(`requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored`)
)

func parseWrk(out string) (result, error) {
	var r result
	m := reRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk output:\n%s", out)
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

// parseH2load reads req/s and counts from h2load's summary and the
// latency percentiles from its per-request log (start µs, status,
// duration µs).
func parseH2load(out, logFile string) (result, error) {
	var r result
	m := reH2RPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no req/s in h2load output:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	r.errors = "none"
	if d := reH2Done.FindStringSubmatch(out); d != nil {
		r.requests, _ = strconv.ParseInt(d[2], 10, 64)
		if d[3] != "0" || d[4] != "0" {
			r.errors = "failed " + d[3] + ", errored " + d[4]
		}
	}
	data, err := os.ReadFile(logFile)
	if err != nil {
		return r, err
	}
	var lat []int
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 {
			if us, err := strconv.Atoi(f[2]); err == nil {
				lat = append(lat, us)
			}
		}
	}
	if len(lat) > 0 {
		sort.Ints(lat)
		r.p50 = time.Duration(lat[len(lat)/2]) * time.Microsecond
		r.p99 = time.Duration(lat[len(lat)*99/100]) * time.Microsecond
	}
	return r, nil
}

// startNginx runs nginx in the foreground with conf in its own prefix.
func (b *bench) startNginx(name, conf string, port int, tls bool) (*exec.Cmd, error) {
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
	if err := waitHTTP(port, tls); err != nil {
		stop(cmd)
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

// waitHTTP waits until the proxy on port answers anything (the chain
// answers 401 without a token).
func waitHTTP(port int, useTLS bool) error {
	deadline := time.Now().Add(15 * time.Second)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	client := &http.Client{Timeout: 5 * time.Second}
	if useTLS {
		url = "https" + url[4:]
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	}
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer from %s within 15s", url)
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
// procPids is pid and, withChildren, its child processes (nginx's workers).
func procPids(pid int, withChildren bool) []int {
	pids := []int{pid}
	if withChildren {
		kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		for _, f := range strings.Fields(string(kids)) {
			if c, err := strconv.Atoi(f); err == nil {
				pids = append(pids, c)
			}
		}
	}
	return pids
}

// countSyscalls counts the system calls pids (all their threads) make
// for d with `perf stat`, as the load runs; the returned function waits
// for the count, or returns -1 where perf cannot count (not installed, no
// permission). Syscalls per request are the other number a loaded
// machine does not move: most of a proxy's CPU is spent in them.
func countSyscalls(pids []int, d time.Duration) func() int64 {
	if _, err := exec.LookPath("perf"); err != nil {
		return func() int64 { return -1 }
	}
	ps := make([]string, len(pids))
	for i, p := range pids {
		ps[i] = strconv.Itoa(p)
	}
	cmd := exec.Command("perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", strings.Join(ps, ","),
		"--", "sleep", strconv.FormatFloat(d.Seconds(), 'f', 1, 64))
	var out strings.Builder
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return func() int64 { return -1 }
	}
	return func() int64 {
		if err := cmd.Wait(); err != nil {
			return -1
		}
		f := strings.SplitN(strings.TrimSpace(out.String()), ",", 2)
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return -1
		}
		return n
	}
}

func cpuTime(pid int, withChildren bool) time.Duration {
	pids := procPids(pid, withChildren)
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
