package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// moduleRoot is the flexgw checkout this file belongs to.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// FakeEnvoy builds the stand-in Envoy (envoy/supervisor/testdata/fakeenvoy;
// Envoy cannot be installed on the build machines) into dir and returns
// the binary's path. It reads flexgw's bootstrap, serves Envoy's admin
// endpoints and, with FAKE_ENVOY_ADS set, plays Envoy's ADS client.
func FakeEnvoy(dir string) (string, error) {
	bin := filepath.Join(dir, "envoy")
	args := []string{"build", "-o", bin}
	if raceEnabled { // the tests' build cache entries, see BuildProgram
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, fakeEnvoyPkg)...)
	cmd.Dir = moduleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build stand-in envoy: %w\n%s", err, out)
	}
	return bin, nil
}

const fakeEnvoyPkg = "./envoy/supervisor/testdata/fakeenvoy"

// FakeEnvoyT is the stand-in Envoy built once per test process (see
// BuildProgram; TestMain calls RemoveBuilds), failing the test when the
// build fails.
func FakeEnvoyT(t testing.TB) string {
	t.Helper()
	return BuildProgram(t, fakeEnvoyPkg)
}

// FakeEnvoyMain builds the stand-in Envoy once for a test binary, points
// *bin at it, runs the tests and exits: a TestMain body.
func FakeEnvoyMain(m *testing.M, bin *string) {
	dir, err := os.MkdirTemp("", "fakeenvoy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *bin, err = FakeEnvoy(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
