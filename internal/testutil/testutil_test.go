package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeT records failures instead of failing the real test.
type fakeT struct {
	testing.TB
	errs []string
}

func (f *fakeT) Helper()                   {}
func (f *fakeT) Errorf(s string, a ...any) { f.errs = append(f.errs, s) }
func (f *fakeT) Fatalf(s string, a ...any) { f.errs = append(f.errs, s) }
func (f *fakeT) Fatal(a ...any)            { f.errs = append(f.errs, "fatal") }

func TestGoldenComparesAndUpdates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "x.golden")
	ft := &fakeT{}
	Golden(ft, path, []byte("a\nb\n"))
	if len(ft.errs) != 1 {
		t.Fatalf("missing golden file: errors %q, want one", ft.errs)
	}
	*update = true
	Golden(ft, path, []byte("a\nb\n"))
	*update = false
	if b, err := os.ReadFile(path); err != nil || string(b) != "a\nb\n" {
		t.Fatalf("-update wrote %q, %v", b, err)
	}
	ft.errs = nil
	Golden(ft, path, []byte("a\nb\n"))
	if len(ft.errs) != 0 {
		t.Fatalf("equal output failed: %q", ft.errs)
	}
	Golden(ft, path, []byte("a\nc\n"))
	if len(ft.errs) != 1 {
		t.Fatalf("changed output: errors %q, want one", ft.errs)
	}
	if d := FirstDiff([]byte("a\nb\n"), []byte("a\nc\n")); !strings.HasPrefix(d, "line 2:") {
		t.Errorf("FirstDiff = %q", d)
	}
	if d := FirstDiff([]byte("a"), []byte("a\nextra")); !strings.HasPrefix(d, "line 2:") {
		t.Errorf("FirstDiff of a longer output = %q", d)
	}
}

func TestSyncBufferConcurrentWrites(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				b.Write([]byte("x"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if n := len(b.String()); n != 800 {
		t.Fatalf("%d bytes, want 800", n)
	}
}
