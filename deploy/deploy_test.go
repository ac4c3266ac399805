package deploy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildBinary builds ./cmd/flexgw once for all tests: the packages must
// carry the real gateway.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "flexgw-deploy-test-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "flexgw")
	// One retry: on this shared machine a concurrent build has been seen to
	// race the build cache ("could not import errors"); a real compile
	// error fails both attempts.
	var berr error
	for attempt := 0; attempt < 2; attempt++ {
		cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/flexgw")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err == nil {
			// The Fluent Bit plugin the packages carry, as `make plugin`
			// names it, beside the binary (plugin(t)).
			cmd = exec.Command("make", "-s", "plugin", "BIN="+dir)
			cmd.Dir = ".."
			out, err = cmd.CombinedOutput()
		}
		if err == nil {
			return bin, nil
		}
		berr = &buildError{out: string(out), err: err}
	}
	return "", berr
})

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return "go build ./cmd/flexgw: " + e.err.Error() + "\n" + e.out }

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

// plugin is the Fluent Bit output plugin built with the binary.
func plugin(t *testing.T) string {
	return filepath.Join(filepath.Dir(binary(t)), "out_flexgw.so")
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
	"usr/bin/flexgw":                        0o755,
	"usr/lib/systemd/system/flexgw.service": 0o644,
	"etc/flexgw/conf.d/README":              0o644,
	"usr/share/doc/flexgw/ebpf.md":          0o644,
	"usr/lib/flexgw/out_flexgw.so":          0o644,
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
	out := run(t, nil, filepath.Join(root, "usr/bin/flexgw"), "version")
	if strings.TrimSpace(out) == "" {
		t.Error("installed flexgw version printed nothing")
	}
}

// verifyUnit runs systemd-analyze verify on the installed unit. The unit's
// ExecStart names /usr/bin/flexgw; verify checks that it exists and is
// executable, so the copy verified points at the binary inside root.
func verifyUnit(t *testing.T, root string) {
	t.Helper()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: unit not verified")
		return
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
	if out := run(t, nil, sa, "verify", path); strings.TrimSpace(out) != "" {
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
	for _, want := range []string{"DynamicUser=yes", "NoNewPrivileges=yes", "Delegate=yes", "ExecStart=/usr/bin/flexgw run --config /etc/flexgw/conf.d"} {
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
// (nfpm), installs it with dpkg into a scratch root (--root: a real dpkg
// install with its own database, so concurrent runs and the host's package
// state are untouched), checks the files and the unit, removes and purges
// it.
func TestDebInstallsRemovesAndVerifies(t *testing.T) {
	out := t.TempDir()
	run(t, []string{"VERSION=1.2.3"}, "./deb.sh", out, binary(t), plugin(t))
	debs, _ := filepath.Glob(filepath.Join(out, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("deb.sh produced %v, want one .deb", debs)
	}
	deb := debs[0]
	info := run(t, nil, "dpkg-deb", "--field", deb, "Package", "Version")
	if !strings.Contains(info, "Package: flexgw") || !strings.Contains(info, "Version: 1.2.3") {
		t.Errorf("deb fields:\n%s", info)
	}
	if conf := run(t, nil, "dpkg-deb", "--ctrl-tarfile", deb); !strings.Contains(conf, "conffiles") {
		t.Error("deb has no conffiles: /etc/flexgw/conf.d/README would be overwritten on upgrade")
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

func TestInstallScript(t *testing.T) {
	root := t.TempDir()
	run(t, []string{"DESTDIR=" + root}, "./install.sh", binary(t), plugin(t))
	checkInstalled(t, root)
	verifyUnit(t, root)

	// A second install keeps an edited README (it is configuration).
	readme := filepath.Join(root, "etc/flexgw/conf.d/README")
	if err := os.WriteFile(readme, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, []string{"DESTDIR=" + root}, "./install.sh", binary(t), plugin(t))
	if b, _ := os.ReadFile(readme); string(b) != "mine\n" {
		t.Errorf("reinstall overwrote conf.d/README: %q", b)
	}
}
