package file

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/exporters"
)

func batch() []exporters.Event {
	t := time.Unix(1700000000, 5)
	return []exporters.Event{
		{Time: t, Kind: exporters.Access, JSON: []byte(`{"method":"GET","path":"/a \"q\"","response_code":200}`)},
		{Time: t, Kind: exporters.Runtime, JSON: []byte(`{"level":"INFO","message":"config applied","component":"agent"}`)},
	}
}

func export(t *testing.T, params map[string]string) {
	t.Helper()
	x, err := New("f", params, exporters.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // appends, never truncates
		if err := x.Export(context.Background(), batch()); err != nil {
			t.Fatal(err)
		}
	}
}

func read(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// TestReferenceGuideExample: Flex's reference guide writes every log to
// one file through a template.
func TestReferenceGuideExample(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.txt")
	export(t, map[string]string{"file": path, "format": "template", "template": "[{time}][{level}][{component}] {message}\n"})
	got := read(t, path)
	want := []string{"[1700000000.000000005][][] ", "[1700000000.000000005][INFO][agent] config applied"}
	if len(got) != 4 || got[0] != want[0] || got[1] != want[1] || got[3] != want[1] {
		t.Fatalf("file holds %q, want twice %q", got, want)
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct {
		format string
		want   []string
	}{
		{"", []string{`flexgw.access: [1700000000.000000005, {"method":"GET","path":"/a \"q\"","response_code":200}]`}},
		{"plain", []string{`{"method":"GET","path":"/a \"q\"","response_code":200}`}},
		{"csv", []string{`1700000000.000000005,"GET","/a ""q""",200`}},
		{"ltsv", []string{"time:1700000000.000000005\tmethod:GET\tpath:/a \"q\"\tresponse_code:200"}},
	} {
		dir := t.TempDir()
		export(t, map[string]string{"path": dir, "format": tc.format})
		// Without file, each stream goes to a file named after its tag.
		got := read(t, filepath.Join(dir, "flexgw.access"))
		if len(got) != 2 || got[0] != tc.want[0] {
			t.Errorf("format %q: %q, want %q twice", tc.format, got, tc.want[0])
		}
		if rt := read(t, filepath.Join(dir, "flexgw.runtime")); len(rt) != 2 {
			t.Errorf("format %q: runtime file %q", tc.format, rt)
		}
	}
}

func TestMkdirAndErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	export(t, map[string]string{"path": dir, "file": "out.log", "mkdir": "on", "format": "plain"})
	if got := read(t, filepath.Join(dir, "out.log")); len(got) != 4 {
		t.Fatalf("%q", got)
	}
	// Without mkdir a missing directory is a retryable failure (it may be
	// created later), not a crash.
	x, _ := New("f", map[string]string{"path": filepath.Join(t.TempDir(), "missing")}, exporters.Settings{})
	if err := x.Export(context.Background(), batch()); err == nil || !exporters.AsError(err).Retryable {
		t.Fatalf("missing directory: %v", err)
	}
	for _, p := range []map[string]string{{}, {"file": "relative.log"}, {"file": "/x", "format": "msgpack"}, {"file": "/x", "Format": "xml"}, {"file": "/x", "host": "h"}} {
		if _, err := New("f", p, exporters.Settings{}); err == nil {
			t.Errorf("%v accepted", p)
		}
	}
}
