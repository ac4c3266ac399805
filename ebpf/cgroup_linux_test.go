package ebpf

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestSetupCgroupRemovesStaleCgroups: a gateway killed with SIGKILL leaves
// its empty flexgw-<pid> cgroup behind; the next start removes it, and
// leaves alone the cgroup named after a process that is still running.
func TestSetupCgroupRemovesStaleCgroups(t *testing.T) {
	mount, err := cgroup2Mount()
	if err != nil {
		t.Fatal(err)
	}
	own, err := ownCgroup(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	origin := filepath.Join(mount, own)

	// A pid that existed and is gone: a finished child.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	// A pid that is alive for the whole test.
	live := exec.Command("sleep", "300")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Process.Kill(); _ = live.Wait() })

	stale := filepath.Join(origin, "flexgw-"+strconv.Itoa(dead.Process.Pid))
	alive := filepath.Join(origin, "flexgw-"+strconv.Itoa(live.Process.Pid))
	for _, d := range []string{stale, alive} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatalf("make test cgroup: %v", err)
		}
	}
	t.Cleanup(func() { os.Remove(stale); os.Remove(alive) })

	h, err := setupCgroup("")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale cgroup %s of a dead process not removed (%v)", stale, err)
	}
	if _, err := os.Stat(alive); err != nil {
		t.Errorf("cgroup %s of a running process was removed: %v", alive, err)
	}
}
