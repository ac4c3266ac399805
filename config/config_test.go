package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/internal/testutil"
)

// testEnv is the fixed environment fixtures expand $VARs against.
func testEnv(name string) (string, bool) {
	v, ok := map[string]string{
		"USERNAME":      "chris",
		"PASSWORD":      "s3cret",
		"UPSTREAM_HOST": "127.0.0.1",
		"LIMIT":         "10",
		"EMPTY":         "",
	}[name]
	return v, ok
}

// TestErrorFixtures loads every testdata/errors/*.yaml and compares the
// reported problems, one per line, with the .errors file beside it.
func TestErrorFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse([]File{{Name: file, Data: data}}, Options{LookupEnv: testEnv})
			if err == nil {
				t.Fatal("expected errors, got none")
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want ErrorList", err)
			}
			for _, e := range list {
				if e.File != file || e.Line == 0 {
					t.Errorf("error without file:line: %q", e.Error())
				}
			}
			golden(t, strings.TrimSuffix(file, ".yaml")+".errors", err.Error()+"\n")
		})
	}
}

// TestValidFixtures loads every testdata/valid/* directory without errors.
func TestValidFixtures(t *testing.T) {
	dirs, _ := filepath.Glob("testdata/valid/*")
	if len(dirs) == 0 {
		t.Fatal("no fixtures")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			if _, err := Load(dir, Options{LookupEnv: testEnv}); err != nil {
				t.Fatalf("unexpected errors:\n%v", err)
			}
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	testutil.Golden(t, path, []byte(got))
}

func TestLoadDirProblems(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	file := filepath.Join(t.TempDir(), "a.yaml")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir, want string
	}{
		{missing, missing + ": configuration directory does not exist"},
		{file, file + ": not a directory"},
	} {
		_, err := LoadDir(tc.dir)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("LoadDir(%s) = %v, want %q", tc.dir, err, tc.want)
		}
	}
}

// TestLoadDirOrder checks files are read sorted by name, .yml included,
// other files and dot-files skipped, and errors sorted by file then line.
func TestLoadDirOrder(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	svc := func(name string) string {
		return "apiVersion: gateway.mulesoft.com/v1alpha1\nkind: Service\nmetadata:\n  name: " + name + "\nspec:\n  address: http://127.0.0.1:9000\n"
	}
	write("b.yml", svc("second"))
	write("a.yaml", svc("first")+"---\n"+svc("third"))
	write(".swap.yaml", "{{{{ not yaml")
	write("notes.txt", "{{{{ not yaml")
	set, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range set.Services {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); got != "first,third,second" {
		t.Errorf("order = %s, want first,third,second", got)
	}

	write("c.yaml", "kind: Bogus\n")
	write("0.yaml", "apiVersion: gateway.mulesoft.com/v1alpha1\nkind: Service\nmetadata:\n  name: x\nspec:\n  address: ftp://h\n")
	_, err = LoadDir(dir)
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], filepath.Join(dir, "0.yaml")+":6:") || !strings.HasPrefix(lines[1], filepath.Join(dir, "c.yaml")+":1:") {
		t.Errorf("errors not sorted by file then line:\n%v", err)
	}
}

func TestExpandEnv(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "plain", want: "plain"},
		{in: "$USERNAME", want: "chris"},
		{in: "${USERNAME}", want: "chris"},
		{in: "u=${USERNAME}-$PASSWORD!", want: "u=chris-s3cret!"},
		{in: "$EMPTY", want: ""},
		{in: "cost $$5", want: "cost $5"},
		{in: "a$", want: "a$"},
		{in: "/api/(.*)$", want: "/api/(.*)$"},
		{in: "$1 and $-", want: "$1 and $-"},
		{in: "$NOPE", err: "environment variable NOPE is not set"},
		{in: "$NOPE ${ALSO}", err: "environment variable NOPE, ALSO is not set"},
		{in: "${BROKEN", err: `malformed variable reference in "${BROKEN" (use ${NAME})`},
		{in: "${1X}", err: `malformed variable reference in "${1X}" (use ${NAME})`},
	} {
		got, err := expandEnv(tc.in, testEnv)
		switch {
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("expandEnv(%q) error = %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("expandEnv(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in         string
		proto, hst string
		port       int
		path, err  string
	}{
		{in: "http://0.0.0.0:8081", proto: "http", hst: "0.0.0.0", port: 8081},
		{in: "http://0.0.0.0:8081/", proto: "http", hst: "0.0.0.0", port: 8081},
		{in: "http://0.0.0.0:8080/api/httpbin/", proto: "http", hst: "0.0.0.0", port: 8080, path: "/api/httpbin"},
		{in: "https://example.com", proto: "https", hst: "example.com", port: 443},
		{in: "HTTP://example.com", proto: "http", hst: "example.com", port: 80},
		{in: "http://[::1]:9000/x", proto: "http", hst: "::1", port: 9000, path: "/x"},
		{in: "", err: "required (protocol://host:port[/path])"},
		{in: "example.com:80", err: `"example.com:80" has no protocol (expected http://host:port or https://host:port)`},
		{in: "ws://h:1", err: `protocol "ws" is not supported (expected http or https)`},
		{in: "http://h:0", err: `port "0" must be between 1 and 65535`},
		{in: "http://h:x", err: `"http://h:x" is not a valid URL: invalid port ":x" after host`},
		{in: "http://h:", err: `"http://h:" has an empty port`},
		{in: "http://:80", err: `"http://:80" has no host`},
		{in: "http://u:p@h:80", err: `"http://u:p@h:80" must not contain user information`},
		{in: "http://h:80/a?b", err: `"http://h:80/a?b" must not contain a query or fragment`},
		{in: "http://h:80/a//b", err: `path "/a//b" must not contain empty segments`},
	} {
		a, err := parseAddress(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("parseAddress(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || a.Protocol != tc.proto || a.Host != tc.hst || a.Port != tc.port || a.Path != tc.path {
			t.Errorf("parseAddress(%q) = %+v, %v", tc.in, a, err)
		}
	}
}

func TestBasePathsClash(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"/cats", "/cats/dogs", true},
		{"/cats/dogs", "/cats", true},
		{"/cats", "/cats", true},
		{"", "/cats", true},
		{"/cats", "/catsanddogs", false},
		{"/api/json", "/api/httpbin", false},
	} {
		if got := basePathsClash(tc.a, tc.b); got != tc.want {
			t.Errorf("basePathsClash(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "a.yaml", Line: 3, Kind: "Service", Name: "s", Field: "spec.address", Reason: "bad"}, "a.yaml:3: Service/s: spec.address: bad"},
		{Error{File: "a.yaml", Line: 3, Kind: "Service", Reason: "bad"}, "a.yaml:3: Service: bad"},
		{Error{File: "dir", Reason: "missing"}, "dir: missing"},
		{Error{Reason: "bare"}, "bare"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

// TestLoggingParameterLists: Flex's Dynatrace example writes the http
// output's header as a list; each item is kept (joined by newlines, one
// Fluent Bit Header line each). An item spanning lines is an error.
func TestLoggingParameterLists(t *testing.T) {
	dir := t.TempDir()
	doc := `apiVersion: gateway.mulesoft.com/v1alpha1
kind: Configuration
metadata:
  name: dynatrace-config
spec:
  logging:
    outputs:
    - name: dynatrace
      type: http
      parameters:
        host: env1.live.dynatrace.com
        Port: "443"
        header:
          - Content-Type application/json; charset=utf-8
          - Authorization Api-Token tok
        URI: /api/v2/logs/ingest
        Format: json
`
	if err := os.WriteFile(filepath.Join(dir, "log.yaml"), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := Load(dir, Options{LookupEnv: testEnv})
	if err != nil {
		t.Fatal(err)
	}
	p := set.Configurations[0].Logging.Outputs[0].Parameters
	if p["header"] != "Content-Type application/json; charset=utf-8\nAuthorization Api-Token tok" || p["Port"] != "443" {
		t.Fatalf("parameters %q", p)
	}
	bad := strings.Replace(doc, "- Authorization Api-Token tok", "- \"Authorization\\nX-Evil: 1\"", 1)
	if err := os.WriteFile(filepath.Join(dir, "log.yaml"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, Options{LookupEnv: testEnv}); err == nil || !strings.Contains(err.Error(), "parameters.header[1]: must be one line") {
		t.Fatalf("a header item with a newline: %v", err)
	}
}
