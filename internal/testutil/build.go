package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The programs tests run (the gateway, the Fluent Bit plugin, stand-ins)
// come from here so that a cold `make test` compiles each package once per
// build configuration, not once per test package that needs a binary:
// every distinct set of flags (-trimpath, CGO_ENABLED=0, -buildmode=c-shared,
// -race) recompiles the whole dependency tree (client-go, grpc,
// go-control-plane), and test packages running side by side used to do it
// at the same time. `make test` builds bin/ first and exports FLEXGW_BIN
// and FLEXGW_PLUGIN; without them (a plain `go test`) the binaries are
// built once per test process with `make` itself, so the flags stay those
// of the Makefile, and removed by RemoveBuilds.

var (
	buildMu   sync.Mutex
	buildDir  string
	built     = map[string]string{} // key -> path
	buildErrs = map[string]error{}
)

// FlexgwBinary returns the gateway as `make build` makes it (CGO_ENABLED=0,
// -trimpath, stripped, version flags): $FLEXGW_BIN when set, else a build
// with `make build`, once per test process.
func FlexgwBinary(t testing.TB) string {
	t.Helper()
	return prebuilt(t, "FLEXGW_BIN", "make build", func(dir string) (string, error) {
		return filepath.Join(dir, "flexgw"), runMake(dir, "build")
	})
}

// PluginLibrary returns the Fluent Bit output plugin (out_flexgw.so) as
// `make plugin` makes it: $FLEXGW_PLUGIN when set, else a build with
// `make plugin`, once per test process.
func PluginLibrary(t testing.TB) string {
	t.Helper()
	return prebuilt(t, "FLEXGW_PLUGIN", "make plugin", func(dir string) (string, error) {
		return filepath.Join(dir, "out_flexgw.so"), runMake(dir, "plugin")
	})
}

// BuildProgram builds the main package at pkg (relative to the module
// root, e.g. "./tui/testdata/topdemo") once per test process and returns
// the binary. It is built with the race detector when the test binary is:
// its packages then come from the same build cache entries as the tests'
// own instead of a separate, uninstrumented compile of the same tree (and
// a stand-in's races show up too).
func BuildProgram(t testing.TB, pkg string) string {
	t.Helper()
	bin, err := buildProgram(pkg)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func buildProgram(pkg string) (string, error) {
	return once("go build "+pkg, func(dir string) (string, error) {
		bin := filepath.Join(dir, filepath.Base(pkg))
		args := []string{"build", "-o", bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = moduleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
		return bin, nil
	})
}

// RemoveBuilds removes what this process built; call it from TestMain
// after m.Run (Main does).
func RemoveBuilds() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
		buildDir = ""
		clear(built)
		clear(buildErrs)
	}
}

// Main runs the tests, removes the builds and exits: a TestMain body.
func Main(m *testing.M) {
	code := m.Run()
	RemoveBuilds()
	os.Exit(code)
}

func prebuilt(t testing.TB, env, what string, build func(dir string) (string, error)) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("$%s (set by make test to the %s output): %v", env, what, err)
		}
		return p
	}
	p, err := once(what, build)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// once runs build for key the first time (into a directory of its own
// under the process's build directory) and returns its result after.
func once(key string, build func(dir string) (string, error)) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[key]; ok {
		return p, nil
	}
	if err, ok := buildErrs[key]; ok {
		return "", err
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "flexgw-test-builds-")
		if err != nil {
			return "", err
		}
		buildDir = d
	}
	dir, err := os.MkdirTemp(buildDir, "b")
	if err == nil {
		var p string
		if p, err = build(dir); err == nil {
			built[key] = p
			return p, nil
		}
	}
	buildErrs[key] = err
	return "", err
}

func runMake(dir, target string) error {
	cmd := exec.Command("make", "-s", "-C", moduleRoot(), target, "BIN="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("make %s: %w\n%s", target, err, strings.TrimSpace(string(out)))
	}
	return nil
}
