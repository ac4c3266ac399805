// Package flbtest runs the real Fluent Bit in tests and benchmarks: it
// finds the binary (FLUENT_BIT, else fluent-bit on PATH), builds the
// output plugin exactly as `make plugin` ships it, and starts processes
// whose logs are kept for failure messages and killed on cleanup.
//
// Fluent Bit has no Debian package, so a machine may lack it; then the
// tests that need it stop with a message saying plainly that they did
// not run. CI sets FLUENT_BIT (.ci/run), so there they always run.
package flbtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/testutil"
)

// Find returns the Fluent Bit binary and "" , or "" and why none is usable.
func Find() (bin, why string) {
	if p := os.Getenv("FLUENT_BIT"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Sprintf("FLUENT_BIT=%s: %v", p, err)
		}
		if st, err := os.Stat(abs); err != nil || st.IsDir() {
			return "", fmt.Sprintf("FLUENT_BIT=%s is not a file (%v)", p, err)
		}
		return abs, ""
	}
	if p, err := exec.LookPath("fluent-bit"); err == nil {
		return p, ""
	}
	return "", "no Fluent Bit: FLUENT_BIT is unset and fluent-bit is not on PATH"
}

// Binary returns the Fluent Bit to test with. Without one the test stops
// as skipped, saying it did not run; a FLUENT_BIT that is set but broken
// fails the test, since then the machine was meant to run it.
func Binary(t testing.TB) string {
	t.Helper()
	bin, why := Find()
	if bin == "" {
		if os.Getenv("FLUENT_BIT") != "" {
			t.Fatalf("%s", why)
		}
		t.Skipf("NOT RUN: this test needs a real Fluent Bit (%s). Fluent Bit has no Debian package; "+
			"set FLUENT_BIT to a fluent-bit binary (CI uses ../shared/tools/fluent-bit/fluent-bit).", why)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s(it needs libyaml-0-2, libsqlite3-0 and libssl3: scripts/deps.sh installs them)", bin, err, out)
	}
	return bin
}

// RepoRoot is the directory holding go.mod, found upward from the
// working directory (a package directory under go test).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("flbtest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// PluginFile is the file name `make plugin` gives the plugin. Fluent Bit
// routes a file whose name starts with "flb-" to its C plugin loader,
// which refuses Go plugins; any other name goes to the Go proxy.
const PluginFile = "out_flexgw.so"

// Plugin returns the plugin as `make plugin` builds it (testutil.PluginLibrary:
// make test's bin/out_flexgw.so, else built once per test process into a
// directory Main removes): the path of the file Fluent Bit loads.
func Plugin(t testing.TB) string {
	t.Helper()
	return testutil.PluginLibrary(t)
}

// Main runs a package's tests and removes the plugin Plugin built; call
// it from TestMain.
func Main(m *testing.M) { testutil.Main(m) }

// Proc is one running fluent-bit.
type Proc struct {
	Cmd     *exec.Cmd
	LogPath string
	done    chan struct{}
	err     error
}

// Start runs fluent-bit with args, its output in a log file under dir.
// Cleanup kills it if it is still running.
func Start(t testing.TB, bin, dir string, args ...string) *Proc {
	t.Helper()
	f, err := os.CreateTemp(dir, "fluent-bit-*.log")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proc{Cmd: exec.Command(bin, args...), LogPath: f.Name(), done: make(chan struct{})}
	p.Cmd.Stdout, p.Cmd.Stderr = f, f
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.Cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.Kill() })
	return p
}

// Log returns what the process wrote so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// Exited reports whether the process ended, and its error.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGTERM and waits up to grace for a clean exit, then kills.
func (p *Proc) Stop(grace time.Duration) error {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("fluent-bit ignored SIGTERM for %s", grace)
	}
}

// WaitLog waits until the log contains s, the process exits, or within
// passes; it reports whether s appeared.
func (p *Proc) WaitLog(s string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		if strings.Contains(p.Log(), s) {
			return true
		}
		if ok, _ := p.Exited(); ok || time.Now().After(deadline) {
			return strings.Contains(p.Log(), s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Lines writes access-log lines with request ids prefix-from..prefix-(to-1)
// to w, one JSON object each, about size bytes long.
func Lines(prefix string, from, to, size int) []byte {
	var b bytes.Buffer
	pad := strings.Repeat("x", max(size-160, 0))
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, `{"start_time":"2026-12-02T08:00:00.000Z","method":"GET","path":"/api/items/%d","response_code":200,"duration":3,"request_id":"%s-%d","api_id":"default/bench","user_agent":"%s"}`+"\n", i, prefix, i, pad)
	}
	return b.Bytes()
}
