// Package gatewaytest runs the real flexgw binary for end-to-end tests
// (test/e2e, and kube/'s tests against a real API server): it builds the
// binary once per test binary, starts `flexgw run` as a process, captures
// its log, waits until it says it serves, and stops it when the test ends.
package gatewaytest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Main builds the binary into a temporary directory, points *bin at it,
// runs the tests, calls after (cleanups of the package's own) and exits: a
// TestMain body.
func Main(m *testing.M, bin *string, after ...func()) {
	dir, err := os.MkdirTemp("", "flexgw-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*bin = filepath.Join(dir, "flexgw")
	// The race detector in the gateway too when the tests run with it: they
	// drive its concurrent paths (reloads, informers, status writes) for
	// real. Without it (benchmarks) the gateway is built as shipped.
	args := []string{"build", "-ldflags", "-X main.version=e2e -X main.commit=test", "-o", *bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "github.com/flexgw/flexgw/cmd/flexgw")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building flexgw:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	for _, f := range after {
		f()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// Options tune Start.
type Options struct {
	// Stdout receives the process's standard output; nil captures it with
	// standard error in Logs.
	Stdout io.Writer
	// Timeout is how long it may take to serve (default 60s).
	Timeout time.Duration
}

// Process is one running `flexgw run`.
type Process struct {
	// Admin is the admin API's host:port, from the "serving" log line.
	Admin string
	// Cmd is the process.
	Cmd *exec.Cmd

	mu      sync.Mutex
	out     bytes.Buffer
	exited  chan struct{}
	exitErr error
}

var adminRe = regexp.MustCompile(`admin=(\S+)`)

// Start runs bin with args and waits until it logs msg=serving. At cleanup
// the process is stopped (SIGTERM, then SIGKILL after 15s) and, when the
// test failed, its log is printed.
func Start(t testing.TB, bin string, args []string, o Options) *Process {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	p := &Process{Cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	pr, pw := io.Pipe()
	p.Cmd.Stderr, p.Cmd.Stdout = pw, pw
	if o.Stdout != nil {
		p.Cmd.Stdout = o.Stdout
	}
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	adminCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.out.WriteString(line + "\n")
			p.mu.Unlock()
			if strings.Contains(line, "msg=serving") {
				admin := ""
				if m := adminRe.FindStringSubmatch(line); m != nil {
					admin = m[1]
				}
				select {
				case adminCh <- admin:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		p.exitErr = p.Cmd.Wait()
		pw.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("flexgw log:\n%s", p.Logs())
		}
	})
	select {
	case p.Admin = <-adminCh:
	case <-p.exited:
		t.Fatalf("flexgw exited before serving: %v\n%s", p.exitErr, p.Logs())
	case <-time.After(o.Timeout):
		t.Fatalf("flexgw did not report serving within %s\n%s", o.Timeout, p.Logs())
	}
	return p
}

// Logs returns what the process logged so far.
func (p *Process) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) { _ = p.Cmd.Process.Signal(sig) }

// Kill ends the process at once and waits for it.
func (p *Process) Kill() {
	select {
	case <-p.exited:
	default:
		_ = p.Cmd.Process.Kill()
		<-p.exited
	}
}

// Stop asks the process to end (SIGTERM: it drains and releases its
// Kubernetes Lease), killing it after 15s.
func (p *Process) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		p.Kill()
	}
}

// Exited is closed when the process has ended; ExitErr is then its error.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitErr is what Wait returned; valid after Exited is closed.
func (p *Process) ExitErr() error { return p.exitErr }
