package deploy

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/testutil"
)

// Version flags of the binary the tests build with `make build`: the
// installed binary must report them (it is bin/flexgw, not a rebuild).
const (
	testVersion = "9.8.7-test"
	testCommit  = "abc1234"
)

// buildBinary runs `make build` once for all tests into a scratch BIN:
// the packages must carry the real gateway as make builds it.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "flexgw-deploy-test-")
	if err != nil {
		return "", err
	}
	// One retry: on this shared machine a concurrent build has been seen to
	// race the build cache ("could not import errors"); a real compile
	// error fails both attempts.
	var berr error
	for attempt := 0; attempt < 2; attempt++ {
		cmd := exec.Command("make", "-s", "build", "plugin", "BIN="+dir, "VERSION="+testVersion, "COMMIT="+testCommit)
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		if err == nil {
			return filepath.Join(dir, "flexgw"), nil
		}
		berr = &buildError{out: string(out), err: err}
	}
	return "", berr
})

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return "make build: " + e.err.Error() + "\n" + e.out }

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := buildBinary(); err == nil {
		os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

func binary(t *testing.T) string {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String() + stderr.String()
}

// wantFiles are the installed paths (relative to the root) and modes.
var wantFiles = map[string]os.FileMode{
	"usr/bin/flexgw":                                  0o755,
	"usr/lib/systemd/system/flexgw.service":           0o644,
	"etc/flexgw/conf.d/README":                        0o644,
	"etc/default/flexgw":                              0o644,
	"usr/share/doc/flexgw/ebpf.md":                    0o644,
	"usr/lib/flexgw/out_flexgw.so":                    0o644,
	"usr/share/man/man1/flexgw.1.gz":                  0o644,
	"usr/share/bash-completion/completions/flexgw":    0o644,
	"usr/share/zsh/vendor-completions/_flexgw":        0o644,
	"usr/share/fish/vendor_completions.d/flexgw.fish": 0o644,
}

func checkInstalled(t *testing.T, root string) {
	t.Helper()
	for rel, mode := range wantFiles {
		fi, err := os.Stat(filepath.Join(root, rel))
		if err != nil {
			t.Errorf("installed file: %v", err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", rel, fi.Mode().Perm(), mode)
		}
	}
	installed := filepath.Join(root, "usr/bin/flexgw")
	out := run(t, nil, installed, "version")
	if want := "flexgw " + testVersion + " (commit " + testCommit + ")"; strings.TrimSpace(out) != want {
		t.Errorf("installed flexgw version: %q, want %q (the binary make build made)", out, want)
	}
	f, err := elf.Open(installed)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Section(".symtab") != nil {
		t.Error("installed flexgw has a symbol table: not the stripped make build binary")
	}
}

// verifyUnit runs systemd-analyze verify on the installed unit. The unit's
// ExecStart names /usr/bin/flexgw; verify checks that it exists and is
// executable, so the copy verified points at the binary inside root.
func verifyUnit(t *testing.T, root string) {
	t.Helper()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not installed (scripts/deps.sh installs it): ", err)
	}
	unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/flexgw.service"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	patched := strings.ReplaceAll(string(unit), "/usr/bin/flexgw", filepath.Join(root, "usr/bin/flexgw"))
	path := filepath.Join(dir, "flexgw.service")
	if err := os.WriteFile(path, []byte(patched), 0o644); err != nil {
		t.Fatal(err)
	}
	// verify exits 0 on unknown keys but warns; any output is a defect.
	// MANPATH: verify checks the unit's Documentation=man:flexgw(1) with man.
	if out := run(t, []string{"MANPATH=" + filepath.Join(root, "usr/share/man")}, sa, "verify", path); strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify flexgw.service:\n%s", out)
	}
}

func TestUnitHasOnlyTheProbeCapabilities(t *testing.T) {
	unit, err := os.ReadFile("flexgw.service")
	if err != nil {
		t.Fatal(err)
	}
	want := "CAP_NET_BIND_SERVICE CAP_BPF CAP_PERFMON CAP_NET_ADMIN"
	for _, key := range []string{"AmbientCapabilities=", "CapabilityBoundingSet="} {
		found := false
		for _, line := range strings.Split(string(unit), "\n") {
			if v, ok := strings.CutPrefix(line, key); ok {
				found = true
				if v != want {
					t.Errorf("%s%s, want %s", key, v, want)
				}
			}
		}
		if !found {
			t.Errorf("unit has no %s", key)
		}
	}
	for _, want := range []string{"DynamicUser=yes", "NoNewPrivileges=yes", "Delegate=yes",
		"EnvironmentFile=-/etc/default/flexgw",
		"ExecStart=/usr/bin/flexgw run --config /etc/flexgw/conf.d $FLEXGW_OPTS",
		"ExecReload=/bin/kill -HUP $MAINPID",
		"SystemCallArchitectures=native"} {
		if !strings.Contains(string(unit), "\n"+want+"\n") {
			t.Errorf("unit lacks %q", want)
		}
	}
	for _, bad := range []string{"User=root", "ProtectControlGroups=yes"} {
		if strings.Contains(string(unit), bad) {
			t.Errorf("unit has %q", bad)
		}
	}
}

// TestDebInstallsRemovesAndVerifies builds the .deb with deploy/deb.sh
// (dpkg-deb) from the make build binary, installs it with dpkg into a scratch root (--root: a real dpkg
// install with its own database, so concurrent runs and the host's package
// state are untouched), checks the files and the unit, removes and purges
// it.
func TestDebInstallsRemovesAndVerifies(t *testing.T) {
	out := t.TempDir()
	run(t, []string{"VERSION=1.2.3"}, "./deb.sh", out, binary(t))
	debs, _ := filepath.Glob(filepath.Join(out, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("deb.sh produced %v, want one .deb", debs)
	}
	deb := debs[0]
	info := run(t, nil, "dpkg-deb", "--field", deb, "Package", "Version")
	if !strings.Contains(info, "Package: flexgw") || !strings.Contains(info, "Version: 1.2.3") {
		t.Errorf("deb fields:\n%s", info)
	}
	ctrl := t.TempDir()
	run(t, nil, "dpkg-deb", "--control", deb, ctrl)
	conffiles, _ := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	if string(conffiles) != "/etc/default/flexgw\n/etc/flexgw/conf.d/README\n" {
		t.Errorf("conffiles:\n%s\nwant /etc/default/flexgw and /etc/flexgw/conf.d/README (kept on upgrade)", conffiles)
	}
	if lint := run(t, nil, "dpkg-deb", "--info", deb); !strings.Contains(lint, "Architecture: ") || !strings.Contains(lint, "Installed-Size: ") {
		t.Errorf("dpkg-deb --info:\n%s", lint)
	}

	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/updates", "var/lib/dpkg/info"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, nil, "dpkg", "--root="+root, "--force-not-root", "-i", deb)
	if st := run(t, nil, "dpkg-query", "--root="+root, "-W", "-f=${Status} ${Version}", "flexgw"); st != "install ok installed 1.2.3" {
		t.Errorf("dpkg-query: %q", st)
	}
	checkInstalled(t, root)
	verifyUnit(t, root)

	run(t, nil, "dpkg", "--root="+root, "--force-not-root", "-r", "flexgw")
	if _, err := os.Stat(filepath.Join(root, "usr/bin/flexgw")); !os.IsNotExist(err) {
		t.Errorf("binary still there after dpkg -r (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/flexgw/conf.d/README")); err != nil {
		t.Errorf("dpkg -r removed the conffile: %v", err)
	}
	run(t, nil, "dpkg", "--root="+root, "--force-not-root", "-P", "flexgw")
	if _, err := os.Stat(filepath.Join(root, "etc/flexgw/conf.d/README")); !os.IsNotExist(err) {
		t.Errorf("conffile still there after purge (%v)", err)
	}
}

// TestMakeInstall runs `make install` into a DESTDIR: it installs the
// binary make build made (version flags, stripped), not a rebuild.
func TestMakeInstall(t *testing.T) {
	root := t.TempDir()
	bin := binary(t)
	run(t, nil, "make", "-s", "-C", "..", "install", "DESTDIR="+root, "BIN="+filepath.Dir(bin), "VERSION="+testVersion, "COMMIT="+testCommit)
	checkInstalled(t, root)
	verifyUnit(t, root)
}

// TestInstallScriptWantsABinary: without a built binary install.sh and
// deb.sh say so instead of building one without the version flags.
func TestInstallScriptWantsABinary(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "flexgw")
	for _, args := range [][]string{{"./install.sh", missing}, {"./deb.sh", t.TempDir(), missing}} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DESTDIR="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "run make build first") {
			t.Errorf("%s: %v\n%s\nwant a failure asking for make build", strings.Join(args, " "), err, out)
		}
	}
}

func TestInstallScript(t *testing.T) {
	root := t.TempDir()
	run(t, []string{"DESTDIR=" + root}, "./install.sh", binary(t))
	checkInstalled(t, root)
	verifyUnit(t, root)

	// A second install keeps an edited README (it is configuration).
	readme := filepath.Join(root, "etc/flexgw/conf.d/README")
	if err := os.WriteFile(readme, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defaults := filepath.Join(root, "etc/default/flexgw")
	if err := os.WriteFile(defaults, []byte("FLEXGW_OPTS=--ebpf off\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, []string{"DESTDIR=" + root}, "./install.sh", binary(t))
	if b, _ := os.ReadFile(readme); string(b) != "mine\n" {
		t.Errorf("reinstall overwrote conf.d/README: %q", b)
	}
	if b, _ := os.ReadFile(defaults); string(b) != "FLEXGW_OPTS=--ebpf off\n" {
		t.Errorf("reinstall overwrote /etc/default/flexgw: %q", b)
	}
}

// TestUnitSecurityExposure runs systemd-analyze security on the unit and
// holds it at its current exposure (2.4 of 10, "OK"): a hardening line
// dropped by mistake raises it and fails here.
func TestUnitSecurityExposure(t *testing.T) {
	unit := patchedUnit(t, "/bin/true")
	cmd := exec.Command("systemd-analyze", "security", "--offline=yes", "--threshold=24", "--no-pager", unit)
	out, err := cmd.CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	t.Log(lines[len(lines)-1])
	if err != nil {
		t.Fatalf("systemd-analyze security: %v (exposure above 2.4)\n%s", err, out)
	}
}

// patchedUnit writes a copy of flexgw.service running bin instead of
// /usr/bin/flexgw and returns its path.
func patchedUnit(t *testing.T, bin string) string {
	t.Helper()
	unit, err := os.ReadFile("flexgw.service")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "flexgw.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/bin/flexgw", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestUnitSystemCallFilterAllowsFlexgw runs the make build binary as the
// unit's ExecStart would, under strace, through start-up (with the kernel
// probe where it can load), a proxied request, a SIGHUP reload and a
// SIGTERM shutdown, and checks every system call it made is in the unit's
// SystemCallFilter as systemd expands it: a call outside it would kill the
// service with EPERM in production (systemd cannot run here).
func TestUnitSystemCallFilterAllowsFlexgw(t *testing.T) {
	allowed := unitSyscalls(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "upstream") }))
	defer backend.Close()
	gw, admin := testutil.FreePort(t), testutil.FreePort(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: api
spec:
  address: http://127.0.0.1:%d
  services:
    upstream:
      address: %s
`, gw, backend.URL)
	if err := os.WriteFile(filepath.Join(dir, "api.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	trace := filepath.Join(t.TempDir(), "trace")
	cmd := exec.Command("strace", "-f", "-qq", "-o", trace, binary(t), "run", "--config", dir,
		"--admin", fmt.Sprintf("127.0.0.1:%d", admin), "--state-dir", t.TempDir(), "--access-log", "off", "--ebpf", "auto")
	logs, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()
	get := func(url string) bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode == http.StatusOK
	}
	waitUntil(t, "flexgw to be ready", exited, func() bool { return get(fmt.Sprintf("http://127.0.0.1:%d/ready", admin)) })
	if !get(fmt.Sprintf("http://127.0.0.1:%d/", gw)) {
		t.Fatal("request through the gateway failed")
	}
	pid := tracedPid(t, trace)
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the SIGHUP reload", exited, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/status", admin))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct {
			LastReload struct{ Reason string } `json:"lastReload"`
		}
		return json.NewDecoder(resp.Body).Decode(&st) == nil && st.LastReload.Reason == "SIGHUP"
	})
	if !get(fmt.Sprintf("http://127.0.0.1:%d/", gw)) {
		t.Fatal("request through the gateway after the reload failed")
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		b, _ := os.ReadFile(logs.Name())
		t.Fatalf("flexgw under strace: %v\n%s", err, b)
	}
	used := tracedSyscalls(t, trace)
	if len(used) < 20 {
		t.Fatalf("only %d system calls traced: %v", len(used), used)
	}
	var denied []string
	for _, name := range used {
		if !allowed[name] {
			denied = append(denied, name)
		}
	}
	if len(denied) > 0 {
		t.Errorf("flexgw made system calls the unit's SystemCallFilter denies: %v\n(all %d used: %v)", denied, len(used), used)
	}
}

// waitUntil polls cond; the process exiting first fails the test.
func waitUntil(t *testing.T, what string, exited chan error, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("flexgw exited (%v) before %s", err, what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var traceLine = regexp.MustCompile(`^(\d+)\s+(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)`)

// tracedPid is the process strace started: the pid of its first line.
func tracedPid(t *testing.T, trace string) int {
	t.Helper()
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	m := traceLine.FindSubmatch(b)
	if m == nil {
		t.Fatalf("no system call in the trace:\n%.500s", b)
	}
	pid, _ := strconv.Atoi(string(m[1]))
	return pid
}

// tracedSyscalls lists the distinct system calls of an strace -f log.
func tracedSyscalls(t *testing.T, trace string) []string {
	t.Helper()
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if m := traceLine.FindStringSubmatch(line); m != nil {
			seen[m[2]] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// unitSyscalls expands the unit's SystemCallFilter= allow list with
// systemd's own definition of the @groups (systemd-analyze syscall-filter).
func unitSyscalls(t *testing.T) map[string]bool {
	t.Helper()
	unit, err := os.ReadFile("flexgw.service")
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string][]string{}
	var cur string
	for _, line := range strings.Split(run(t, nil, "systemd-analyze", "syscall-filter", "--no-pager"), "\n") {
		switch f := strings.TrimSpace(line); {
		case f == "" || strings.HasPrefix(f, "#"):
		case !strings.HasPrefix(line, " "):
			cur = f
		default:
			groups[cur] = append(groups[cur], f)
		}
	}
	allowed := map[string]bool{}
	var add func(string)
	add = func(name string) {
		if !strings.HasPrefix(name, "@") {
			allowed[name] = true
			return
		}
		members, ok := groups[name]
		if !ok {
			t.Fatalf("systemd knows no syscall group %s", name)
		}
		for _, m := range members {
			add(m)
		}
	}
	filters := 0
	for _, line := range strings.Split(string(unit), "\n") {
		v, ok := strings.CutPrefix(line, "SystemCallFilter=")
		if !ok {
			continue
		}
		if strings.HasPrefix(v, "~") {
			t.Fatalf("deny lists are not expanded by this test: %s", line)
		}
		filters++
		for _, name := range strings.Fields(v) {
			add(name)
		}
	}
	if filters == 0 || len(allowed) < 100 {
		t.Fatalf("unit's SystemCallFilter expands to %d calls", len(allowed))
	}
	return allowed
}
