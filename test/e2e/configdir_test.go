package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEmptyConfigDirRunsAndValidates: a fresh install's conf.d holds only
// a README. `validate` accepts it, `run` serves the admin API and is
// ready, logs that nothing is configured, and serves an API added later.
func TestEmptyConfigDirRunsAndValidates(t *testing.T) {
	dir := writeConfig(t, map[string]string{"README": "Put Flex Gateway *.yaml files here.\n"})
	out, err := exec.Command(flexgwBin, "validate", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "valid: no APIs configured") {
		t.Fatalf("validate on an empty conf.d: %v\n%s", err, out)
	}

	g := startGateway(t, dir)
	if code, body, _ := get(t, g.adminURL("/ready")); code != 200 {
		t.Fatalf("/ready = %d %s, want 200", code, body)
	}
	g.waitLog(t, "no APIs configured", "no log line says nothing is configured")
	up := startUpstream(t, "late", nil)
	port := freePort(t)
	writeFile(t, filepath.Join(dir, "api.yaml"), fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: late
spec:
  address: http://127.0.0.1:%d/
  services:
    backend:
      address: %s
      routes:
        - rules:
            - path: (/.*)
`, port, up.URL))
	eventually(t, 30*time.Second, func() string {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/x", port))
		if err != nil {
			return err.Error() // not listening until the reload applies
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "late GET /x") {
			return fmt.Sprintf("%d %q", resp.StatusCode, body)
		}
		return ""
	})
}

// TestMissingConfigDirNamedOnce: the start-up error names the directory
// once ("config DIR: DIR: …" before).
func TestMissingConfigDirNamedOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	out, err := exec.Command(flexgwBin, "run", "--config", dir, "--admin", "127.0.0.1:0", "--ebpf", "off", "--dataplane", "builtin").CombinedOutput()
	if err == nil {
		t.Fatalf("run on a missing directory succeeded:\n%s", out)
	}
	if n := strings.Count(string(out), dir); n != 1 {
		t.Errorf("the directory is named %d times, want once:\n%s", n, out)
	}
}

// TestConfigDirFIFOAndDevZero: a FIFO and a link to /dev/zero named *.yaml
// fail `validate` (naming the files) at once, and a gateway whose directory
// gains them keeps serving, rejects the reload, answers SIGHUP and exits on
// SIGTERM.
func TestConfigDirFIFOAndDevZero(t *testing.T) {
	up := startUpstream(t, "up", nil)
	port := freePort(t)
	dir := writeConfig(t, map[string]string{"10-api.yaml": fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: orders
spec:
  address: http://127.0.0.1:%d/
  services:
    backend:
      address: %s
      routes:
        - rules:
            - path: (/.*)
`, port, up.URL)})
	g := startGateway(t, dir)

	fifo := filepath.Join(dir, "20-fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "30-zero.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(flexgwBin, "validate", dir)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("validate blocked on a FIFO or /dev/zero")
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("validate: %v, want exit 1\n%s", err, out)
	}
	for _, want := range []string{fifo + ": is a FIFO", zero + ": is a character device"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}

	eventually(t, 30*time.Second, func() string {
		_, body, _ := get(t, g.adminURL("/api/v1/status"))
		if !strings.Contains(body, `"result": "failure"`) || !strings.Contains(body, "is a FIFO") {
			return body
		}
		return ""
	})
	if code, _, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/x", port)); code != 200 {
		t.Errorf("last good config stopped serving: %d", code)
	}
	g.signal(syscall.SIGHUP)
	g.signal(syscall.SIGTERM)
	if code := g.waitExit(t, 60*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM\n%s", code, g.logs())
	}
}

// TestConfigDirUnreadableFileAsNobody: a file the gateway may not read is
// a config error naming it. Run as root, the binary is started as nobody
// (root reads any file); otherwise as the current user.
func TestConfigDirUnreadableFileAsNobody(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "10-svc.yaml")
	locked := filepath.Join(dir, "20-auth.yaml")
	for _, f := range []string{good, locked} {
		if err := os.WriteFile(f, []byte("apiVersion: gateway.mulesoft.com/v1alpha1\nkind: Service\nmetadata:\n  name: s"+filepath.Base(f)[:2]+"\nspec:\n  address: http://127.0.0.1:9000\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(flexgwBin, "validate", dir)
	if os.Geteuid() == 0 {
		// nobody must reach the binary and the directory.
		for _, p := range []string{filepath.Dir(flexgwBin), flexgwBin, dir, filepath.Dir(dir)} {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("validate with an unreadable file: %v, want exit 1\n%s", err, out)
	}
	if want := locked + ": cannot open: permission denied"; !strings.Contains(string(out), want) {
		t.Errorf("validate output lacks %q:\n%s", want, out)
	}
}
