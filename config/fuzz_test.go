package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the parser: bad input must produce
// errors, never a panic. `go test` runs the seeds (every fixture);
// `go test -fuzz=FuzzParse ./config` explores further.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.yaml")
	more, _ := filepath.Glob("testdata/valid/*/*.y*ml")
	for _, s := range append(seeds, more...) {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("a: *b"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Parse([]File{{Name: "f.yaml", Data: data}}, Options{LookupEnv: testEnv})
		if set == nil {
			t.Fatal("Parse returned a nil set")
		}
		if err != nil && err.Error() == "" {
			t.Fatal("empty error text")
		}
	})
}
