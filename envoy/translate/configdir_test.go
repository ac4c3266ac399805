package translate

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/snapshot"
)

// loadDir builds a config directory's snapshot as the agent serves it
// (policies checked, config-shaping policies applied).
func loadDir(t *testing.T, dir string) *ir.Snapshot {
	t.Helper()
	s, err := snapshot.LoadDir(dir, 1)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return s
}

// TestGoldenConfigDirs: testdata/in/<case>/*.yaml → testdata/out/<case>.yaml.
func TestGoldenConfigDirs(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "in", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases in testdata/in: %v", err)
	}
	// The README's demo config is golden too: testdata/out/examples.yaml.
	dirs = append(dirs, filepath.Join("..", "..", "examples"))
	for _, dir := range dirs {
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			res, err := Translate(loadDir(t, dir), testOpts)
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, res)
			checkGolden(t, name, goldenYAML(t, res))
		})
	}
}

// TestProjectFixturesTranslate: every example and valid config fixture in
// the repository translates to valid, consistent resources. Their golden
// files belong to their owners, so only the invariants are checked here.
func TestProjectFixturesTranslate(t *testing.T) {
	var dirs []string
	// examples/ is itself one config directory (its *.yaml are the conf.d
	// the README runs); config/testdata/valid/* are one directory each.
	for _, pattern := range []string{"../../examples", "../../config/testdata/valid/*"} {
		m, _ := filepath.Glob(pattern)
		for _, d := range m {
			if yamls, _ := filepath.Glob(filepath.Join(d, "*.y*ml")); len(yamls) > 0 {
				dirs = append(dirs, d)
			}
		}
	}
	if !slices.Contains(dirs, "../../examples") {
		t.Fatalf("examples/ holds no *.yaml: the README's demo config is not translated (dirs: %v)", dirs)
	}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			t.Setenv("USERNAME", "user")
			t.Setenv("PASSWORD", "secret")
			t.Setenv("UPSTREAM_HOST", "127.0.0.1")
			for _, k := range []string{"FLEXGW_TEST_ENV"} {
				os.Unsetenv(k)
			}
			// The served snapshot's options, less the log-output and
			// tracing checks, which are not the translator's:
			// config/testdata/valid/flex-docs names Flex's "file" log
			// output, which logpipe does not accept yet (issue 13).
			opts := snapshot.Options(1)
			opts.CheckSnapshot = nil
			s, err := ir.LoadDir(dir, opts)
			if err != nil {
				// Every valid fixture must compile with the environment
				// set above; a silent skip would hide a translation gap.
				t.Fatalf("config does not compile: %v", err)
			}
			res, err := Translate(s, testOpts)
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, res)
		})
	}
}
