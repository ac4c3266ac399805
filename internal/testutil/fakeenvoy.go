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
	cmd := exec.Command("go", "build", "-o", bin, "./envoy/supervisor/testdata/fakeenvoy")
	cmd.Dir = moduleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build stand-in envoy: %w\n%s", err, out)
	}
	return bin, nil
}

// FakeEnvoyT is FakeEnvoy into a directory of the test's, failing it when
// the build fails.
func FakeEnvoyT(t testing.TB) string {
	t.Helper()
	bin, err := FakeEnvoy(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
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
