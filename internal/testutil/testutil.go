// Package testutil holds what the tests of many packages share: golden
// files behind one -update flag (`make golden` regenerates them all), a
// log buffer safe to write from the goroutines under test while the test
// reads it, the stand-in Envoy build, and Local Mode configuration
// composed from Go (localmode.go) for tests that load it the way the
// gateway does. It imports nothing of flexgw, so any package's tests may
// use it.
package testutil

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files from the current output (make golden); review the diff")

// Update reports whether this run rewrites golden files (-update).
func Update() bool { return *update }

// Golden compares got with the golden file at path; with -update it writes
// got there instead (creating the directory). A difference fails the test
// with the first differing line.
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run make golden, or go test -update in this package, to create it)", err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (make golden, or go test -update, and review the diff):\n%s", path, FirstDiff(want, got))
	}
}

// FirstDiff names the first line where want and got differ, "" when equal.
func FirstDiff(want, got []byte) string {
	wl := bytes.Split(want, []byte("\n"))
	gl := bytes.Split(got, []byte("\n"))
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g []byte
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if !bytes.Equal(w, g) || i >= len(wl) || i >= len(gl) {
			return "line " + strconv.Itoa(i+1) + ":\n- " + string(w) + "\n+ " + string(g)
		}
	}
	return ""
}

// SyncBuffer is a bytes.Buffer for logs written by goroutines under test
// and read by the test.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
