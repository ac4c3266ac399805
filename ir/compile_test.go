package ir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/config"
	"github.com/flexgw/flexgw/internal/testutil"
)

var fixedNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func testEnv(name string) (string, bool) {
	v, ok := map[string]string{"USERNAME": "chris", "PASSWORD": "s3cret", "LIMIT": "10"}[name]
	return v, ok
}

// checkPolicy is a stand-in for policy.Check (the policy package sits
// above ir and cannot be imported here): it knows a few Flex policy names
// and requires rate-limiting-flex to have rateLimits.
func checkPolicy(p *Policy) error {
	switch p.Name {
	case "http-basic-authentication-flex", "header-injection":
		return nil
	case "rate-limiting-flex":
		var c struct {
			RateLimits []json.RawMessage `json:"rateLimits"`
		}
		if err := json.Unmarshal(p.Config, &c); err != nil || len(c.RateLimits) == 0 {
			return errors.New("policy \"rate-limiting-flex\": config.rateLimits: at least one limit is required")
		}
		return nil
	}
	return fmt.Errorf("policy %q: unknown policy", p.Name)
}

func compileDir(t *testing.T, dir string) (*Snapshot, error) {
	t.Helper()
	set, err := config.Load(dir, config.Options{LookupEnv: testEnv})
	if err != nil {
		return nil, err
	}
	return Compile(set, CompileOptions{Version: 7, Now: fixedNow, CheckPolicy: checkPolicy})
}

// TestGolden compiles every testdata/in/<case> directory and compares the
// snapshot JSON (or the error lines) with testdata/out/<case>.json|.errors.
func TestGolden(t *testing.T) {
	dirs, _ := filepath.Glob("testdata/in/*")
	if len(dirs) == 0 {
		t.Fatal("no fixtures")
	}
	for _, dir := range dirs {
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			snap, err := compileDir(t, dir)
			var got, ext string
			if err != nil {
				var list config.ErrorList
				if !errors.As(err, &list) {
					t.Fatalf("error is %T, want config.ErrorList: %v", err, err)
				}
				got, ext = err.Error()+"\n", ".errors"
			} else {
				b, err := json.MarshalIndent(snap, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				got, ext = string(b)+"\n", ".json"
			}
			golden(t, filepath.Join("testdata/out", name+ext), got)
			other := ".json"
			if ext == ".json" {
				other = ".errors"
			}
			if _, err := os.Stat(filepath.Join("testdata/out", name+other)); err == nil {
				t.Errorf("stale golden file %s%s: the case now yields %s", name, other, ext)
			}
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	testutil.Golden(t, path, []byte(got))
}

// TestSnapshotJSONRoundTrip checks a snapshot survives JSON (the admin API
// and `flexgw validate` print it; regexes recompile from their source).
func TestSnapshotJSONRoundTrip(t *testing.T) {
	snap, err := compileDir(t, "testdata/in/inline")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	r := back.Listeners[0].APIs[0].Routes[0]
	if !r.Rules[0].Path.MatchString("/items/1") {
		t.Errorf("round-tripped regex does not match")
	}
	b2, _ := json.Marshal(&back)
	if string(b) != string(b2) {
		t.Errorf("round trip changed the JSON")
	}
}

func TestHash(t *testing.T) {
	write := func(dir, password, comment string) {
		t.Helper()
		body := comment + `
apiVersion: gateway.mulesoft.com/v1alpha1
kind: Configuration
metadata:
  name: redis
spec:
  sharedStorage:
    redis:
      address: 127.0.0.1:6379
      password: ` + password + "\n"
		if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hash := func(dir string, version uint64, now time.Time) string {
		t.Helper()
		set, err := config.Load(dir, config.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := Compile(set, CompileOptions{Version: version, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return s.Hash
	}
	a, b := t.TempDir(), t.TempDir()
	write(a, "one", "# a comment")
	write(b, "one", "# another comment")
	if hash(a, 1, fixedNow) != hash(b, 2, time.Now()) {
		t.Error("equal content with different version/time/comment text must hash equal")
	}
	write(b, "two", "# a comment")
	if hash(a, 1, fixedNow) == hash(b, 1, fixedNow) {
		t.Error("a changed password (not in the JSON) must change the hash")
	}
}

func TestLoadDirExamples(t *testing.T) {
	// The examples the README runs must always validate (policies are
	// checked by the policy package in cmd/flexgw; here only structure).
	snap, err := LoadDir("../examples", CompileOptions{Version: 1})
	if err != nil {
		t.Fatalf("examples do not validate:\n%v", err)
	}
	if len(snap.APIs()) < 2 || snap.Version != 1 || snap.CreatedAt.IsZero() || len(snap.Hash) != 64 {
		t.Errorf("unexpected snapshot: %s version=%d hash=%q", Summary(snap), snap.Version, snap.Hash)
	}
}

func TestLoadDirErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	_, err := LoadDir(missing, CompileOptions{})
	var list config.ErrorList
	if !errors.As(err, &list) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("LoadDir(missing) = %v", err)
	}
	// An empty directory is a valid configuration with no APIs.
	snap, err := LoadDir(t.TempDir(), CompileOptions{Version: 1})
	if err != nil || len(snap.APIs()) != 0 || Summary(snap) != "0 APIs, 0 routes, 0 services, 0 policies" {
		t.Errorf("LoadDir(empty) = %v, %v", snap, err)
	}
}

func TestSummary(t *testing.T) {
	for _, tc := range []struct{ dir, want string }{
		{"testdata/in/inline", "1 API, 3 routes, 2 services, 2 policies"},
		{"testdata/in/resources", "1 API, 3 routes, 2 services, 3 policies"},
		{"testdata/in/configuration", "0 APIs, 0 routes, 0 services, 0 policies"},
	} {
		snap, err := compileDir(t, tc.dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := Summary(snap); got != tc.want {
			t.Errorf("Summary(%s) = %q, want %q", tc.dir, got, tc.want)
		}
	}
}

// TestCompileInvalidSets compiles every invalid fixture of the config
// package: LoadDir compiles sets that have errors to report policy
// problems too, so Compile must cope with half-valid input.
func TestCompileInvalidSets(t *testing.T) {
	files, _ := filepath.Glob("../config/testdata/errors/*.yaml")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		set, _ := config.Parse([]config.File{{Name: f, Data: data}}, config.Options{LookupEnv: testEnv})
		if _, err := Compile(set, CompileOptions{CheckPolicy: checkPolicy}); err != nil {
			var list config.ErrorList
			if !errors.As(err, &list) {
				t.Errorf("%s: error is %T", f, err)
			}
		}
	}
}

func TestLoadDirReportsPolicyAndConfigErrorsTogether(t *testing.T) {
	dir := t.TempDir()
	body := `apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: api
spec:
  address: http://0.0.0.0:8081
  adress: typo
  policies:
    - policyRef:
        name: no-such-policy
`
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadDir(dir, CompileOptions{CheckPolicy: checkPolicy})
	f := filepath.Join(dir, "a.yaml")
	want := f + ":7: ApiInstance/api: spec.adress: unknown field (expected one of address, services, policies, websocket)\n" +
		f + ":9: ApiInstance/api: spec.policies[0].config: policy \"no-such-policy\": unknown policy"
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}
