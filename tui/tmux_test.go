package tui

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/testutil"
)

// tmux drives a real terminal: a private tmux server runs the interactive
// TUI (testdata/topdemo: the TUI attached to a stand-in gateway fed with
// synthetic traffic), and the test types keys and reads the screen.
type tmux struct {
	t    *testing.T
	sock string
}

func (x *tmux) run(args ...string) (string, error) {
	out, err := exec.Command("tmux", append([]string{"-L", x.sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
	return string(out), err
}

func (x *tmux) screen() string {
	out, _ := x.run("capture-pane", "-p", "-t", "top")
	return out
}

func (x *tmux) keys(keys ...string) {
	x.t.Helper()
	if out, err := x.run(append([]string{"send-keys", "-t", "top"}, keys...)...); err != nil {
		x.t.Fatalf("tmux send-keys %v: %v: %s", keys, err, out)
	}
}

// waitScreen polls the pane until cond holds.
func (x *tmux) waitScreen(what string, cond func(s string) bool) string {
	x.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := x.screen()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("timed out waiting for %s; screen:\n%s", what, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func contains(subs ...string) func(string) bool {
	return func(s string) bool {
		for _, sub := range subs {
			if !strings.Contains(s, sub) {
				return false
			}
		}
		return true
	}
}

// demo builds testdata/topdemo once per test binary.
func demo(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux is required for this test (apt-get install tmux): %v", err)
	}
	return testutil.BuildProgram(t, "./tui/testdata/topdemo")
}

func TestMain(m *testing.M) { testutil.Main(m) }

// startTmux runs cmd in a fresh private tmux server, 130x36.
func startTmux(t *testing.T, cmd string) *tmux {
	t.Helper()
	x := &tmux{t: t, sock: fmt.Sprintf("flexgw-top-test-%d-%d", os.Getpid(), time.Now().UnixNano())}
	t.Cleanup(func() { x.run("kill-server") })
	if out, err := x.run("new-session", "-d", "-s", "top", "-x", "130", "-y", "36", cmd); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	return x
}

func TestTmuxNoColor(t *testing.T) {
	x := startTmux(t, "exec env NO_COLOR=1 TERM=xterm-256color "+demo(t)+" -refresh 200ms")
	x.waitScreen("the APIs view", contains("gw-demo-1", "default/orders (3)"))
	out, err := x.run("capture-pane", "-e", "-p", "-t", "top")
	if err != nil {
		t.Fatal(err)
	}
	// Bold and reverse stay (they are not colour); no foreground or
	// background colour may be emitted: SGR 30-38, 40-48, 90-97, 100-107.
	for _, seq := range strings.Split(out, "\x1b[")[1:] {
		end := strings.IndexFunc(seq, func(r rune) bool { return r >= 0x40 && r <= 0x7e })
		if end < 0 || seq[end] != 'm' {
			continue // not SGR
		}
		for _, p := range strings.Split(seq[:end], ";") {
			colour := (len(p) == 2 && (p[0] == '3' || p[0] == '4' || p[0] == '9') && p[1] != '9') ||
				(len(p) == 3 && p[:2] == "10")
			if colour {
				t.Fatalf("NO_COLOR=1 but the screen has colour SGR %q in %q", p, seq[:end])
			}
		}
	}
	if !strings.Contains(out, "\x1b[") {
		t.Error("no attributes at all: expected bold/reverse to remain")
	}
}

func TestTmuxInteractive(t *testing.T) {
	x := startTmux(t, demo(t)+" -refresh 200ms")

	s := x.waitScreen("the APIs view with traffic", contains("gw-demo-1", "default/orders (3)", "sort RPS"))
	if !strings.Contains(s, "connected to http://127.0.0.1:") {
		t.Errorf("header lacks the connection line:\n%s", s)
	}

	// Sort by name (S goes back from RPS to NAME, ascending).
	x.keys("S")
	s = x.waitScreen("sort by name", contains("sort NAME"))
	if a, u := strings.Index(s, "default/auth"), strings.Index(s, "default/users"); a < 0 || u < 0 || a > u {
		t.Errorf("name sort: auth at %d, users at %d:\n%s", a, u, s)
	}

	// Filter by name.
	x.keys("/", "p", "a", "y", "Enter")
	s = x.waitScreen("the filter", contains(`filter "pay"`, "1 rows", "default/payments"))
	if strings.Contains(s, "default/orders") {
		t.Errorf("filter left other APIs:\n%s", s)
	}
	x.keys("Escape")
	x.waitScreen("the cleared filter", contains("6 rows"))
	// Drill into the selected API (still payments: the selection survives
	// clearing the filter) and back.
	x.keys("Enter")
	x.waitScreen("the drill-down", contains("API default/payments", "ROUTE", "SERVICE"))
	x.keys("Escape")
	x.waitScreen("the table again", contains("6 rows"))

	// Switch views: logs with the 5xx filter, upstreams, pipeline.
	x.keys("3")
	x.waitScreen("the log tail", contains("filters: none", "TIME", "METHOD", "live"))
	x.keys("e")
	x.waitScreen("the 5xx filter", contains("status ≥ 500", "503"))
	x.keys("2")
	x.waitScreen("the upstreams", contains("eBPF probe off", "stand-in gateway", "default/orders-svc", "DOWN"))
	x.keys("Tab", "Tab", "Tab")
	x.waitScreen("the APIs again (tab wraps past Pipeline)", contains("sort NAME", "default/orders (3)"))
	x.keys("4")
	x.waitScreen("the pipeline", contains("splunk", "stand-in: 503 from collector"))
	x.keys("?")
	x.waitScreen("help", contains("flexgw top — keys"))
	// Escape and q sent together would read as alt+q: wait in between.
	x.keys("Escape")
	x.waitScreen("help closed", contains("splunk", "LAST ERROR"))
	x.keys("q")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := x.run("has-session", "-t", "top"); err != nil {
			break // the program exited and its session with it
		}
		if time.Now().After(deadline) {
			t.Fatalf("q did not quit; screen:\n%s", x.screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
