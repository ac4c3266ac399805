package ebpf

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flexgw/flexgw/ir"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// Child modes of the test binary, used to act as "another process".
const (
	envChildDial   = "FLEXGW_EBPF_TEST_DIAL"   // dial the address 5 times, print own cgroup
	envChildNoCaps = "FLEXGW_EBPF_TEST_NOCAPS" // run Start without capabilities, print the outcome
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(envChildDial); addr != "" {
		os.Exit(childDial(addr))
	}
	if os.Getenv(envChildNoCaps) != "" {
		os.Exit(childNoCaps())
	}
	os.Exit(m.Run())
}

func childDial(addr string) int {
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		io.ReadAll(c)
		c.Close()
	}
	cg, err := ownCgroup(os.Getpid())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(cg)
	return 0
}

// noCapsResult is what the capability-less child reports.
type noCapsResult struct {
	CheckErr string
	AutoNil  bool
	AutoErr  string
	AutoLog  string
	OnErr    string
}

func childNoCaps() int {
	var res noCapsResult
	if err := Check(); err != nil {
		res.CheckErr = err.Error()
	}
	var logBuf strings.Builder
	p, err := Start(Options{Mode: ModeAuto, Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
	res.AutoNil = p == nil
	if err != nil {
		res.AutoErr = err.Error()
	}
	res.AutoLog = logBuf.String()
	if _, err := Start(Options{Mode: ModeOn}); err != nil {
		res.OnErr = err.Error()
	}
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

func startProbe(t *testing.T, opts Options) *Probe {
	t.Helper()
	opts.Mode = ModeOn
	opts.Interval = 5 * time.Millisecond
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if _, err := os.Stat(p.Cgroup()); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left behind after Close (%v)", p.Cgroup(), err)
		}
	})
	return p
}

// waitFor polls cond until it holds; the deadline is generous because the
// machine is shared and loaded, and only a hang should hit it.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func findEndpoint(s Snapshot, endpoint string) EndpointSnapshot {
	for _, e := range s.Endpoints {
		if e.Endpoint == endpoint {
			return e
		}
	}
	return EndpointSnapshot{}
}

func findListener(s Snapshot, port uint16) ListenerSnapshot {
	for _, l := range s.Listeners {
		if l.Port == port {
			return l
		}
	}
	return ListenerSnapshot{}
}

func closedLifetimes(s Snapshot, dir string) uint64 {
	for _, l := range s.Lifetime {
		if l.Direction == dir {
			return l.Closed
		}
	}
	return 0
}

// serveOK runs a TCP server that writes "ok" and closes every connection.
func serveOK(t *testing.T, ln net.Listener) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("ok"))
			c.Close()
		}
	}()
}

func dialOK(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "ok" {
		t.Fatalf("read from %s: %q, %v", addr, b, err)
	}
}

func TestProbeMeasuresGatewayConnections(t *testing.T) {
	// The names are built once the listener's port is known: the probe
	// reads them through the pointer, as the agent swaps them on reload.
	var names atomic.Pointer[Names]
	p := startProbe(t, Options{Names: names.Load})
	// The listener is opened after Start, so it is in the gateway's cgroup
	// and its accepted connections count as inbound.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upstream := ln.Addr().(*net.TCPAddr).AddrPort()
	names.Store(NamesFromSnapshot(context.Background(), &ir.Snapshot{
		Listeners: []*ir.Listener{{Name: "test_listener", Port: int(upstream.Port())}},
		Services: []*ir.Service{{Namespace: "default", Name: "upstream",
			Endpoints: []ir.Endpoint{{Host: "upstream.test", Port: int(upstream.Port())}}}},
	}, func(context.Context, string) ([]netip.Addr, error) { return []netip.Addr{upstream.Addr()}, nil }))
	serveOK(t, ln)
	const conns = 5
	for i := 0; i < conns; i++ {
		dialOK(t, upstream.String())
	}
	epName := "upstream.test:" + strconv.Itoa(int(upstream.Port()))

	var s Snapshot
	waitFor(t, "5 connects, handshakes and closed connections each way", func() bool {
		s = p.Snapshot()
		return findEndpoint(s, epName).Connects >= conns && findListener(s, upstream.Port()).Handshakes >= conns &&
			closedLifetimes(s, "outbound") >= conns && closedLifetimes(s, "inbound") >= conns
	})
	ep := findEndpoint(s, epName)
	if ep.Service != "default/upstream" || ep.Connects != conns || ep.Failures != 0 {
		t.Errorf("endpoint %+v, want 5 connects to default/upstream and no failures", ep)
	}
	// Loopback connects take microseconds; a second would mean a
	// retransmitted SYN, which nothing here provokes.
	if ep.ConnectP50 <= 0 || ep.ConnectP99 >= 1 {
		t.Errorf("implausible loopback connect latency p50=%gs p99=%gs", ep.ConnectP50, ep.ConnectP99)
	}
	if ep.RTTSamples == 0 || ep.RTTP50 <= 0 || ep.RTTP50 >= 1 {
		t.Errorf("implausible outbound RTT: %d samples, p50 %gs", ep.RTTSamples, ep.RTTP50)
	}
	l := findListener(s, upstream.Port())
	if l.Listener != "test_listener" || l.Handshakes != conns || l.HandshakeP50 <= 0 || l.HandshakeP99 >= 1 || l.RTTSamples == 0 {
		t.Errorf("listener %+v", l)
	}

	// The same numbers through Prometheus.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "flexgw_tcp_connect_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["service"] == "default/upstream" && labels["endpoint"] == epName {
				found = true
				if n := m.GetHistogram().GetSampleCount(); n != conns {
					t.Errorf("prometheus connect count %d, want %d", n, conns)
				}
			}
		}
	}
	if !found {
		t.Errorf("no flexgw_tcp_connect_duration_seconds series for %s", epName)
	}
}

// reservedClosedPort binds a TCP socket without listening: the port stays
// reserved for the test, and SYNs to it are answered with RST.
func reservedClosedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port))
}

// TestProbeSamplesRTTOfOpenConnections: a connection that stays open is
// sampled by the socket iterator each time it runs, per endpoint and per
// listener, and gives one more sample when it closes.
func TestProbeSamplesRTTOfOpenConnections(t *testing.T) {
	// The periodic sweep must not run during the test: the test runs it.
	p := startProbe(t, Options{RTTInterval: time.Hour})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	c, err := net.Dial("tcp4", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := <-accepted
	defer srv.Close()
	// One round trip each way, so both ends have an RTT estimate.
	buf := make([]byte, 1)
	for _, pair := range [][2]net.Conn{{c, srv}, {srv, c}} {
		if _, err := pair[0].Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(pair[1], buf); err != nil {
			t.Fatal(err)
		}
	}

	samples := func() (out, in uint64) {
		s := p.Snapshot()
		return findEndpoint(s, addr.String()).RTTSamples, findListener(s, addr.Port()).RTTSamples
	}
	waitFor(t, "the connect and the handshake", func() bool {
		s := p.Snapshot()
		return findEndpoint(s, addr.String()).Connects == 1 && findListener(s, addr.Port()).Handshakes == 1
	})
	if out, in := samples(); out != 0 || in != 0 {
		t.Fatalf("RTT samples before any sweep: outbound %d, inbound %d, want 0", out, in)
	}
	for want := uint64(1); want <= 2; want++ {
		if err := p.SampleRTT(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, fmt.Sprintf("%d RTT samples each way", want), func() bool {
			out, in := samples()
			return out == want && in == want
		})
	}
	c.Close()
	srv.Close()
	waitFor(t, "the samples taken at close", func() bool {
		out, in := samples()
		return out == 3 && in == 3
	})
	s := p.Snapshot()
	if ep := findEndpoint(s, addr.String()); ep.RTTP50 <= 0 || ep.RTTP50 >= 1 {
		t.Errorf("implausible loopback RTT p50 %gs", ep.RTTP50)
	}
}

func TestProbeCountsConnectFailures(t *testing.T) {
	p := startProbe(t, Options{})
	closed := reservedClosedPort(t)
	for i := 0; i < 3; i++ {
		if c, err := net.Dial("tcp", closed.String()); err == nil {
			c.Close()
			t.Fatalf("dial %s succeeded, want connection refused", closed)
		}
	}
	var ep EndpointSnapshot
	waitFor(t, "3 failed connects", func() bool {
		ep = findEndpoint(p.Snapshot(), closed.String())
		return ep.Failures >= 3
	})
	if ep.Failures != 3 || ep.Connects != 0 || ep.Service != UnknownService {
		t.Errorf("endpoint %+v, want 3 failures, no connects, service unknown", ep)
	}
}

func TestProbeIgnoresOtherProcesses(t *testing.T) {
	p := startProbe(t, Options{})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOK(t, ln)
	addr := ln.Addr().String()

	// The child starts directly in the cgroup the test came from, outside
	// the gateway's (a plain fork would inherit the gateway's cgroup).
	outside, err := os.Open(filepath.Dir(p.Cgroup()))
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envChildDial+"="+addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(outside.Fd())}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	if cg := strings.TrimSpace(string(out)); strings.Contains(cg, "flexgw-") {
		t.Fatalf("child ran in the gateway's cgroup %s", cg)
	}

	// The child has exited, so its connects have all passed the
	// tracepoint. One more from the gateway marks the point to read at.
	dialOK(t, addr)
	var s Snapshot
	waitFor(t, "the gateway's connect and 6 accepted handshakes", func() bool {
		s = p.Snapshot()
		return findEndpoint(s, addr).Connects >= 1 && findListener(s, ln.Addr().(*net.TCPAddr).AddrPort().Port()).Handshakes >= 6
	})
	if n := findEndpoint(s, addr).Connects; n != 1 {
		t.Errorf("%d outgoing connects counted, want 1: the other process's 5 must not count", n)
	}
	// The connections the gateway accepted from the child are the
	// gateway's: 5 + 1 handshakes.
	if n := findListener(s, ln.Addr().(*net.TCPAddr).AddrPort().Port()).Handshakes; n != 6 {
		t.Errorf("%d accepted handshakes, want 6", n)
	}
}

// TestProbeSeesDelayedHandshake delays a connect honestly: the upstream's
// accept queue is full (listen backlog 0 with one connection queued and
// not accepted), so the kernel drops the SYN and the client retransmits it
// after the initial 1s RTO. The test accepts the queued connection once the
// client has retransmitted, and the connect completes on a later
// fullListener is a loopback listener with a backlog of 0 whose accept
// queue is already full (one connection, never accepted): the SYN of the
// next connect is dropped and retransmitted until the test accepts.
func fullListener(t *testing.T) (lfd, port int) {
	t.Helper()
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(lfd) })
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(lfd)
	port = sa.(*unix.SockaddrInet4).Port
	filler, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
	return lfd, port
}

// TestProbeExpiresStaleHandshakes: a connect whose SYN is never answered
// (the listener's accept queue is full) stays pending in the kernel map
// until user space expires it; once it does complete, the connection is
// tracked from then on (its close counted) without a connect sample.
func TestProbeExpiresStaleHandshakes(t *testing.T) {
	p := startProbe(t, Options{RTTInterval: time.Hour})
	lfd, port := fullListener(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != unix.EINPROGRESS {
		t.Fatalf("non-blocking connect: %v, want EINPROGRESS", err)
	}

	now, err := monotonicNow()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := p.expirePending(now, time.Hour); err != nil || n != 0 {
		t.Fatalf("expirePending(now, 1h) removed %d (%v), want 0: nothing is that old", n, err)
	}
	// A clock that has run for less than the TTL (a machine booted half an
	// hour ago, TTL 1h): nothing can be older than the TTL. The subtraction
	// used to wrap around and expire every pending handshake.
	if n, err := p.expirePending(uint64(30*time.Minute), time.Hour); err != nil || n != 0 {
		t.Fatalf("expirePending at 30m uptime with TTL 1h removed %d (%v), want 0", n, err)
	}
	if n, err := p.expirePending(now, 0); err != nil || n != 1 {
		t.Fatalf("expirePending(now, 0) removed %d (%v), want the one pending connect", n, err)
	}
	// Let the connect through and close it.
	nfd, _, err := unix.Accept(lfd)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(nfd)
	waitFor(t, "the delayed connect to complete", func() bool {
		info, err := unix.GetsockoptTCPInfo(fd, unix.SOL_TCP, unix.TCP_INFO)
		return err == nil && info.State == unix.BPF_TCP_ESTABLISHED
	})
	closedBefore := closedLifetimes(p.Snapshot(), "outbound")
	unix.Close(fd)
	fd = -1
	waitFor(t, "the expired connection's close", func() bool {
		return closedLifetimes(p.Snapshot(), "outbound") > closedBefore
	})
	if n := findEndpoint(p.Snapshot(), addr).Connects; n != 1 {
		t.Errorf("%d connect samples, want 1 (the filler's; the expired one has no start time)", n)
	}
}

// retransmission: at least a second after it started.
func TestProbeSeesDelayedHandshake(t *testing.T) {
	p := startProbe(t, Options{})
	lfd, port := fullListener(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)

	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != unix.EINPROGRESS {
		t.Fatalf("non-blocking connect: %v, want EINPROGRESS", err)
	}
	accepted := false
	began := time.Now()
	waitFor(t, "the delayed connect to complete", func() bool {
		info, err := unix.GetsockoptTCPInfo(fd, unix.SOL_TCP, unix.TCP_INFO)
		if err != nil {
			t.Fatalf("TCP_INFO: %v", err)
		}
		if info.State == unix.BPF_TCP_ESTABLISHED {
			return true
		}
		if info.State != unix.BPF_TCP_SYN_SENT {
			t.Fatalf("connect ended in TCP state %d", info.State)
		}
		if info.Total_retrans >= 1 && !accepted {
			nfd, _, err := unix.Accept(lfd)
			if err != nil {
				t.Fatalf("accept: %v", err)
			}
			unix.Close(nfd)
			accepted = true
		}
		return false
	})
	t.Logf("delayed connect completed after %v (user-space view)", time.Since(began))
	if !accepted {
		t.Fatal("connect completed without a SYN retransmission: the accept queue was not full")
	}
	var ep EndpointSnapshot
	waitFor(t, "both connects counted", func() bool {
		ep = findEndpoint(p.Snapshot(), addr)
		return ep.Connects >= 2
	})
	if ep.Connects != 2 {
		t.Errorf("%d connects, want 2 (filler and delayed)", ep.Connects)
	}
	t.Logf("kernel connect latency p50 %.6fs p99 %.6fs", ep.ConnectP50, ep.ConnectP99)
	// p99 of {fast, >=1s} lies in the slow connect's bucket.
	if ep.ConnectP99 < 0.5 {
		t.Errorf("p99 connect latency %gs, want the retransmitted connect's >= 1s", ep.ConnectP99)
	}
	if ep.ConnectP50 >= 0.5 {
		t.Errorf("p50 connect latency %gs, want the filler's loopback latency", ep.ConnectP50)
	}
}

// TestAutoModeWithoutCapabilities runs Start in a child whose capability
// sets are empty (setpriv from util-linux): auto logs one line naming what
// is missing and returns no probe and no error; on returns the error.
func TestAutoModeWithoutCapabilities(t *testing.T) {
	if err := Check(); err != nil {
		t.Fatalf("Check as root: %v", err)
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is needed to drop capabilities: %v", err)
	}
	cmd := exec.Command(setpriv, "--bounding-set=-all", "--inh-caps=-all", os.Args[0])
	cmd.Env = append(os.Environ(), envChildNoCaps+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	var res noCapsResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	for _, want := range []string{"CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "AmbientCapabilities"} {
		if !strings.Contains(res.CheckErr, want) {
			t.Errorf("Check error %q does not mention %s", res.CheckErr, want)
		}
	}
	if !res.AutoNil || res.AutoErr != "" {
		t.Errorf("auto without capabilities: probe nil=%v err=%q, want nil, nil", res.AutoNil, res.AutoErr)
	}
	lines := strings.Split(strings.TrimSpace(res.AutoLog), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "CAP_BPF") || !strings.Contains(lines[0], "component=ebpf") {
		t.Errorf("auto logged %q, want one warning naming CAP_BPF", res.AutoLog)
	}
	if !strings.Contains(res.OnErr, "CAP_BPF") {
		t.Errorf("on without capabilities: error %q, want one naming CAP_BPF", res.OnErr)
	}
}

// TestProbeDualStack covers IPv6 and IPv4 connections to one dual-stack
// listener: the v4 SYN arrives on an AF_INET request socket and completes
// on an AF_INET6 child with a v4-mapped address, and both must meet in the
// same handshake measurement.
func TestProbeDualStack(t *testing.T) {
	p := startProbe(t, Options{})
	ln, err := net.Listen("tcp", "[::]:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOK(t, ln)
	port := ln.Addr().(*net.TCPAddr).AddrPort().Port()
	v6 := netip.AddrPortFrom(netip.IPv6Loopback(), port).String()
	v4 := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String()
	dialOK(t, v6)
	dialOK(t, v4)
	var s Snapshot
	waitFor(t, "a connect to each address and two handshakes", func() bool {
		s = p.Snapshot()
		return findEndpoint(s, v6).Connects >= 1 && findEndpoint(s, v4).Connects >= 1 && findListener(s, port).Handshakes >= 2
	})
	if a, b, h := findEndpoint(s, v6).Connects, findEndpoint(s, v4).Connects, findListener(s, port).Handshakes; a != 1 || b != 1 || h != 2 {
		t.Errorf("connects v6=%d v4=%d handshakes=%d, want 1, 1, 2", a, b, h)
	}
}

// TestProbeConfiguredCgroup: with Options.Cgroup the probe measures that
// cgroup (here given relative to the cgroup2 mount), moves nothing, and
// leaves the cgroup in place on Close.
func TestProbeConfiguredCgroup(t *testing.T) {
	mount, err := cgroup2Mount()
	if err != nil {
		t.Fatal(err)
	}
	own, err := ownCgroup(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	name := "flexgw-configured-" + strconv.Itoa(os.Getpid())
	dir := filepath.Join(mount, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := moveProcess(dir); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := moveProcess(filepath.Join(mount, own)); err != nil {
			t.Error(err)
		}
		if err := os.Remove(dir); err != nil {
			t.Error(err)
		}
	}()

	p, err := Start(Options{Mode: ModeOn, Cgroup: name, Interval: 5 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if p.Cgroup() != dir {
		t.Errorf("probe measures %s, want %s", p.Cgroup(), dir)
	}
	if cg, _ := ownCgroup(os.Getpid()); cg != "/"+name {
		t.Errorf("Start moved the process to %s", cg)
	}
	closed := reservedClosedPort(t)
	net.Dial("tcp", closed.String())
	waitFor(t, "the failed connect", func() bool { return findEndpoint(p.Snapshot(), closed.String()).Failures >= 1 })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("Close removed the configured cgroup: %v", err)
	}
}

// TestPendingCutoffDoesNotWrap: the cutoff never wraps below zero, however
// short the clock's run (uptime) and however long the TTL.
func TestPendingCutoffDoesNotWrap(t *testing.T) {
	for _, tc := range []struct {
		now       uint64
		olderThan time.Duration
		want      uint64
		ok        bool
	}{
		{now: uint64(2 * time.Hour), olderThan: time.Hour, want: uint64(time.Hour), ok: true},
		{now: uint64(time.Hour), olderThan: time.Hour, want: 0, ok: true},
		{now: uint64(time.Minute), olderThan: pendingTTL, ok: false},
		{now: 0, olderThan: time.Nanosecond, ok: false},
		{now: 5, olderThan: 0, want: 5, ok: true},
		{now: 5, olderThan: -time.Second, want: 5, ok: true},
	} {
		got, ok := pendingCutoff(tc.now, tc.olderThan)
		if got != tc.want || ok != tc.ok {
			t.Errorf("pendingCutoff(%d, %v) = %d, %v; want %d, %v", tc.now, tc.olderThan, got, ok, tc.want, tc.ok)
		}
	}
}
