package ebpf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cgroup2Mount returns where the cgroup v2 hierarchy is mounted
// (/sys/fs/cgroup on unified systems, /sys/fs/cgroup/unified on hybrid
// ones).
func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find cgroup v2 mount: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ... - fstype source super
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		if fs := strings.Fields(post); len(fs) > 0 && fs[0] == "cgroup2" {
			if f := strings.Fields(pre); len(f) >= 5 {
				return f[4], nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read /proc/self/mountinfo: %w", err)
	}
	return "", errors.New("no cgroup v2 hierarchy is mounted (mount -t cgroup2 none /sys/fs/cgroup/unified, or boot with systemd.unified_cgroup_hierarchy=1)")
}

// ownCgroup is the process's cgroup v2 path relative to the mount, "/" for
// the root cgroup.
func ownCgroup(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", fmt.Errorf("read own cgroup: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return rest, nil
		}
	}
	return "", fmt.Errorf("/proc/%d/cgroup has no cgroup v2 (0::) entry", pid)
}

// cgroupHandle is the cgroup whose sockets the probe measures.
type cgroupHandle struct {
	path string // absolute directory
	id   uint64 // kernfs node id, what the kernel calls the cgroup id
	// created is set when Start made the cgroup and moved the process into
	// it; Close moves the process back to origin and removes it.
	created bool
	origin  string
}

// setupCgroup resolves Options.Cgroup or creates the process's own cgroup.
func setupCgroup(configured string) (*cgroupHandle, error) {
	mount, err := cgroup2Mount()
	if err != nil {
		return nil, err
	}
	h := &cgroupHandle{}
	if configured != "" {
		h.path = configured
		if !filepath.IsAbs(configured) || !strings.HasPrefix(filepath.Clean(configured)+"/", filepath.Clean(mount)+"/") {
			h.path = filepath.Join(mount, configured)
		}
	} else {
		own, err := ownCgroup(os.Getpid())
		if err != nil {
			return nil, err
		}
		h.origin = filepath.Join(mount, own)
		removeStaleCgroups(h.origin)
		h.path = filepath.Join(h.origin, "flexgw-"+strconv.Itoa(os.Getpid()))
		if err := os.Mkdir(h.path, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("create cgroup %s for the gateway (needs write access to the cgroup, e.g. Delegate=yes in the systemd unit, or set a cgroup with Options.Cgroup): %w", h.path, err)
		}
		if err := moveProcess(h.path); err != nil {
			os.Remove(h.path)
			return nil, err
		}
		h.created = true
	}
	if _, err := filepath.Rel(mount, h.path); err != nil {
		return nil, fmt.Errorf("cgroup %s is not below the cgroup v2 mount %s", h.path, mount)
	}
	if h.id, err = cgroupID(h.path); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

// removeStaleCgroups removes the flexgw-<pid> cgroups that gateways which
// died without Close (SIGKILL, a crash) left in dir: only those whose
// process no longer exists, and rmdir refuses a cgroup that still holds a
// process, so a live gateway's cgroup is never touched. Best effort.
func removeStaleCgroups(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "flexgw-")
		if !e.IsDir() || !ok {
			continue
		}
		pid, err := strconv.Atoi(rest)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
			continue // alive (or not ours to judge)
		}
		_ = unix.Rmdir(filepath.Join(dir, e.Name()))
	}
}

// moveProcess moves the whole process (every thread) into dir.
func moveProcess(dir string) error {
	procs := filepath.Join(dir, "cgroup.procs")
	if err := os.WriteFile(procs, []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		return fmt.Errorf("move the gateway into cgroup %s: %w", dir, err)
	}
	return nil
}

// cgroupID returns the cgroup id the kernel reports for dir (the same value
// bpf_get_current_cgroup_id and cgroup->kn->id give), read from its file
// handle; on 64-bit kernels it is also the directory's inode number.
func cgroupID(dir string) (uint64, error) {
	fh, _, err := unix.NameToHandleAt(unix.AT_FDCWD, dir, 0)
	if err == nil && len(fh.Bytes()) >= 8 {
		return binary.NativeEndian.Uint64(fh.Bytes()), nil
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	return st.Ino, nil
}

// close undoes what setupCgroup created.
func (h *cgroupHandle) close() error {
	if h == nil || !h.created {
		return nil
	}
	h.created = false
	if err := moveProcess(h.origin); err != nil {
		return err
	}
	if err := os.Remove(h.path); err != nil {
		return fmt.Errorf("remove cgroup %s: %w", h.path, err)
	}
	return nil
}
