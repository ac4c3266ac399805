package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/testutil"
)

func basicAuthBindingYAML(password string) string {
	return `apiVersion: gateway.mulesoft.com/v1alpha1
kind: PolicyBinding
metadata:
  name: orders-auth
spec:
  targetRef:
    name: orders
  policyRef:
    name: http-basic-authentication-flex
  config:
    username: chris
    password: ` + password + "\n"
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	code, _ := get(t, url)
	return code
}

// TestEmptyConfigDirServes: a fresh install's conf.d holds only a README.
// The gateway must serve its admin API, be ready, say nothing is
// configured, and serve an API added later.
func TestEmptyConfigDirServes(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("Put Flex Gateway *.yaml files here.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs testutil.SyncBuffer
	ta := startAgent(t, testOptions(t, dir, &logs), &logs)
	if code, body := get(t, "http://"+ta.admin+"/ready"); code != http.StatusOK {
		t.Fatalf("/ready with no APIs = %d %s, want 200", code, body)
	}
	if !strings.Contains(logs.String(), "no APIs configured") {
		t.Errorf("start with no APIs not logged:\n%s", logs.String())
	}
	if st := ta.status(t); !strings.HasPrefix(st.Summary, "0 APIs") || st.SnapshotVersion != 1 {
		t.Errorf("status: %+v", st)
	}

	up := upstream(t, "late")
	port := testutil.FreePort(t)
	writeConfig(t, dir, "api.yaml", apiYAML(port, up.URL))
	ta.waitReload(t, "success", "file change")
	if code, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/x", port)); code != 200 || body != "late /x" {
		t.Fatalf("API added to an empty directory: %d %q", code, body)
	}
}

// TestConfigDirAttacksKeepLastGood swaps the file holding an auth policy
// for entries that are not regular files. Each reload must fail naming
// the file, the policy must keep applying (401, never 200), nothing the
// entries point at may reach the status or the logs, and fixing the file
// is reported as a recovery.
func TestConfigDirAttacksKeepLastGood(t *testing.T) {
	up := upstream(t, "up")
	port := testutil.FreePort(t)
	dir := t.TempDir()
	writeConfig(t, dir, "10-api.yaml", apiYAML(port, up.URL))
	writeConfig(t, dir, "20-auth.yaml", basicAuthBindingYAML("pw1"))
	var logs testutil.SyncBuffer
	ta := startAgent(t, testOptions(t, dir, &logs), &logs)
	gw := fmt.Sprintf("http://127.0.0.1:%d/x", port)
	if code := getStatus(t, gw); code != http.StatusUnauthorized {
		t.Fatalf("with basic auth bound: %d, want 401", code)
	}

	const marker = "SHADOW-MARKER-7f3a"
	secret := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(secret, []byte("root:$6$"+marker+":19000:0:99999:7:::\nkind: "+marker+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	auth := filepath.Join(dir, "20-auth.yaml")
	for _, tc := range []struct {
		name, target, want string
	}{
		{"dangling symlink", filepath.Join(dir, "gone.yaml"), "broken symbolic link"},
		{"FIFO", fifo, "is a FIFO"},
		{"/dev/zero", "/dev/zero", "is a character device"},
		{"a password file", secret, "not a Flex Gateway resource"},
	} {
		// Put the link in place atomically, as an attacker with write access
		// to the directory (or a broken deploy) would.
		tmp := filepath.Join(dir, ".swap")
		if err := os.Symlink(tc.target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, auth); err != nil {
			t.Fatal(err)
		}
		st := ta.waitReload(t, "failure", "file change")
		if !strings.Contains(st.LastReload.Error, auth) || !strings.Contains(st.LastReload.Error, tc.want) {
			t.Errorf("%s: reload error %q does not name %s with %q", tc.name, st.LastReload.Error, auth, tc.want)
		}
		if st.SnapshotVersion != 1 {
			t.Errorf("%s: snapshot %d serves, want the last good 1", tc.name, st.SnapshotVersion)
		}
		if code := getStatus(t, gw); code != http.StatusUnauthorized {
			t.Fatalf("%s: %d, want 401 from the last good snapshot", tc.name, code)
		}
		// Back to good between attacks, so each one is a change to notice.
		writeConfig(t, dir, "20-auth.yaml", basicAuthBindingYAML("pw1"))
		ta.waitReload(t, "recovered", "file change")
	}
	_, status := get(t, "http://"+ta.admin+"/api/v1/status")
	if strings.Contains(status, marker) || strings.Contains(logs.String(), marker) {
		t.Errorf("the linked file's contents reached the status or the logs")
	}
	if !strings.Contains(logs.String(), `msg="config recovered" component=agent reason="file change" snapshot=1`) {
		t.Errorf("recovery not logged:\n%s", logs.String())
	}

	// Shutdown with a FIFO in the directory still returns.
	if err := os.Symlink(fifo, filepath.Join(dir, "30-fifo.yaml")); err != nil {
		t.Fatal(err)
	}
	ta.waitReload(t, "failure", "file change")
	ta.cancel()
	select {
	case err := <-ta.done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		ta.done <- nil // for the cleanup
	case <-time.After(60 * time.Second):
		t.Fatal("agent did not stop with a FIFO in the config directory")
	}
}

// TestRunBoundedAbandonsAStuckShutdown: a part that ignores cancellation
// must not keep the process from exiting after SIGTERM.
func TestRunBoundedAbandonsAStuckShutdown(t *testing.T) {
	stuck := make(chan struct{})
	defer close(stuck)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := runBounded(ctx, 10*time.Millisecond, func(context.Context) error { <-stuck; return nil })
	if err == nil || !strings.Contains(err.Error(), "shutdown still not finished") {
		t.Fatalf("runBounded = %v, want the give-up error", err)
	}
	want := errors.New("done")
	if err := runBounded(context.Background(), time.Hour, func(context.Context) error { return want }); err != want {
		t.Fatalf("runBounded passes run's error through: got %v", err)
	}
}
