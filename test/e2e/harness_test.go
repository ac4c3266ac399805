// Package e2e starts the real flexgw binary against real upstream servers on
// loopback and checks what a user would see.
package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/gatewaytest"
	"github.com/flexgw/flexgw/internal/testutil"
)

var flexgwBin string

func TestMain(m *testing.M) { gatewaytest.Main(m, &flexgwBin, testutil.RemoveBuilds) }

// freePort returns a loopback port that was free a moment ago. The config
// format needs a concrete port, so the gateway cannot listen on :0 itself.
func freePort(t *testing.T) int { return testutil.FreePort(t) }

// writeConfig writes files (name → content) into a new config dir.
func writeConfig(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		writeFile(t, filepath.Join(dir, name), content)
	}
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// Write then rename so the watcher never sees a half-written file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// gateway is one running flexgw process.
type gateway struct {
	*gatewaytest.Process
	admin     string
	accessLog string
}

// startGateway runs `flexgw run` on dir and waits until it serves.
func startGateway(t *testing.T, dir string, extra ...string) *gateway {
	t.Helper()
	g := &gateway{accessLog: filepath.Join(t.TempDir(), "access.log")}
	args := append([]string{"run", "--config", dir, "--admin", "127.0.0.1:0",
		"--access-log", g.accessLog, "--state-dir", t.TempDir(), "--watch-interval", "50ms",
		"--dataplane", "builtin", "--ebpf", "off", "--drain-timeout", "10s"}, extra...)
	g.Process = gatewaytest.Start(t, flexgwBin, args, gatewaytest.Options{Stdout: os.Stdout})
	g.admin = g.Admin
	t.Cleanup(g.kill) // before gatewaytest's graceful stop: these tests need no drain
	return g
}

func (g *gateway) logs() string { return g.Logs() }

// waitLog waits until the gateway's output holds want. The output reaches
// the test through a pipe, so a line written before the state the test just
// observed (a reload status, /ready) may still be on its way.
func (g *gateway) waitLog(t *testing.T, want, why string) {
	t.Helper()
	eventually(t, 10*time.Second, func() string {
		if strings.Contains(g.logs(), want) {
			return ""
		}
		return why + ":\n" + g.logs()
	})
}

func (g *gateway) kill() { g.Kill() }

func (g *gateway) signal(sig syscall.Signal) { g.Signal(sig) }

// waitExit waits for the process to end and returns its exit code.
func (g *gateway) waitExit(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-g.Exited():
	case <-time.After(within):
		t.Fatalf("flexgw still running after %s\n%s", within, g.logs())
	}
	err := g.ExitErr()
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("wait: %v", err)
	return -1
}

func (g *gateway) adminURL(path string) string { return "http://" + g.admin + path }

// eventually polls cond until it returns "" (success) or the deadline
// passes, then fails with the last reason.
func eventually(t *testing.T, within time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	var reason string
	for time.Now().Before(deadline) {
		if reason = cond(); reason == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("condition not met within %s: %s", within, reason)
}

// get performs a GET and returns status and body.
func get(t *testing.T, url string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// upstream is a real HTTP server on loopback that echoes what it received.
type upstream struct {
	URL  string
	Addr string
	srv  *http.Server
	hits chan *http.Request
}

func startUpstream(t *testing.T, name string, h http.HandlerFunc) *upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{Addr: ln.Addr().String(), URL: "http://" + ln.Addr().String(), hits: make(chan *http.Request, 1024)}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Upstream", name)
			fmt.Fprintf(w, "%s %s %s", name, r.Method, r.URL.RequestURI())
		}
	}
	u.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case u.hits <- r:
		default:
		}
		h(w, r)
	})}
	go u.srv.Serve(ln)
	t.Cleanup(func() { u.srv.Close() })
	return u
}

func runGo(args ...string) ([]byte, error) {
	return exec.Command("go", args...).CombinedOutput()
}
