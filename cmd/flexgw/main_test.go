package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/agent"
	"github.com/flexgw/flexgw/internal/testutil"
)

// flexgw runs the command in process and returns its exit status, stdout
// and stderr.
func flexgw(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestHelp: --help on every command exits 0 with a usage on stdout whose
// flags are double-dash and described.
func TestHelp(t *testing.T) {
	flagLine := regexp.MustCompile(`^  (-[a-z], )?--[a-z-]+( [A-Z]+)?\s{2,}\S`)
	for _, c := range app().Commands {
		if c.Hidden {
			continue
		}
		for _, help := range []string{"--help", "-h"} {
			args := append(strings.Fields(c.Name), help)
			code, out, errOut := flexgw(t, args...)
			if code != 0 || errOut != "" {
				t.Errorf("flexgw %s: exit %d, stderr %q; want 0 and nothing", strings.Join(args, " "), code, errOut)
			}
			if !strings.HasPrefix(out, "Usage: flexgw "+c.Name) || !strings.Contains(out, c.Short) {
				t.Errorf("flexgw %s: usage:\n%s", strings.Join(args, " "), out)
			}
			inFlags := false
			for _, line := range strings.Split(out, "\n") {
				if line == "Flags:" {
					inFlags = true
					continue
				}
				if inFlags && line != "" && !flagLine.MatchString(line) {
					t.Errorf("flexgw %s: flag line %q is not '--name ARG  description'", c.Name, line)
				}
			}
			if len(c.Flags()) > 0 && !inFlags {
				t.Errorf("flexgw %s --help lists no flags:\n%s", c.Name, out)
			}
		}
	}
	for _, args := range [][]string{{"--help"}, {"help"}, {"-h"}} {
		if code, out, _ := flexgw(t, args...); code != 0 || !strings.Contains(out, "config dump") {
			t.Errorf("flexgw %v: exit %d\n%s", args, code, out)
		}
	}
	if code, out, _ := flexgw(t, "help", "validate"); code != 0 || !strings.HasPrefix(out, "Usage: flexgw validate [flags] DIR") {
		t.Errorf("flexgw help validate: exit %d\n%s", code, out)
	}
}

// TestStrayArguments: a word where none belongs is a usage error (exit 2)
// naming it, never silently ignored with the flags after it.
func TestStrayArguments(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--config", "d", "run", "--ebpf", "bogus", "--admin", "127.0.0.1:1"},
		{"top", "--once", "extra", "args"},
		{"status", "x"},
		{"config", "dump", "x"},
		{"version", "x"},
		{"envoy", "bootstrap", "x"},
		{"completion", "bash", "x"},
		{"validate", "a", "b"},
	} {
		code, out, errOut := flexgw(t, args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "unexpected argument") {
			t.Errorf("flexgw %s: exit %d, stdout %q, stderr %q; want exit 2 naming the argument", strings.Join(args, " "), code, out, errOut)
		}
	}
	for _, args := range [][]string{{"validate"}, {"completion"}, {"bogus"}, {"config"}, {}} {
		if code, _, errOut := flexgw(t, args...); code != 2 || errOut == "" {
			t.Errorf("flexgw %v: exit %d, stderr %q; want 2 and a message", args, code, errOut)
		}
	}
	// A bad value names the flag as the usage writes it.
	if code, _, errOut := flexgw(t, "run", "--ebpf", "bogus"); code != 2 || !strings.Contains(errOut, "flag --ebpf: must be one of auto, on, off") {
		t.Errorf("run --ebpf bogus: exit %d, %q", code, errOut)
	}
}

const badConfig = `apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: broken
spec:
  address: http://0.0.0.0:8081
  servces: {}
`

// TestValidateOutput: problems go to stderr (stdout stays clean for
// pipes), -o json puts the verdict on stdout, exit 1 when invalid.
func TestValidateOutput(t *testing.T) {
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "bad.yaml"), []byte(badConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := flexgw(t, "validate", bad)
	if code != 1 || out != "" || !strings.Contains(errOut, "bad.yaml:") || strings.Contains(errOut, "flexgw validate:") {
		t.Errorf("validate bad: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = flexgw(t, "validate", bad, "-o", "json")
	var res validateResult
	if code != 1 || errOut != "" || json.Unmarshal([]byte(out), &res) != nil || res.Valid || len(res.Errors) == 0 || !strings.Contains(res.Errors[0], "bad.yaml:") {
		t.Errorf("validate -o json bad: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = flexgw(t, "validate", "--output=json", "../../examples")
	if code != 0 || errOut != "" || json.Unmarshal([]byte(out), &res) != nil || !res.Valid || res.Summary == "" {
		t.Errorf("validate -o json examples: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, _ := flexgw(t, "validate", "../../examples"); code != 0 || !strings.Contains(out, ": valid: ") {
		t.Errorf("validate examples: exit %d, %q", code, out)
	}
	if code, _, errOut := flexgw(t, "validate", "-o", "yaml", "../../examples"); code != 2 || !strings.Contains(errOut, "text, json") {
		t.Errorf("validate -o yaml: exit %d, %q", code, errOut)
	}
}

func TestVersionJSON(t *testing.T) {
	code, out, _ := flexgw(t, "version", "-o", "json")
	var v map[string]string
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v["version"] != version || v["commit"] != commit || v["go"] == "" {
		t.Errorf("version -o json: exit %d, %q", code, out)
	}
	if code, out, _ := flexgw(t, "--version"); code != 0 || out != fmt.Sprintf("flexgw %s (commit %s)\n", version, commit) {
		t.Errorf("--version: exit %d, %q", code, out)
	}
}

// TestNotFlexgw: status, config dump and top pointed at a server that is
// not flexgw (or not there) fail with a clear error, once prefixed, exit 1.
func TestNotFlexgw(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"status":"ok"}`)
			return
		}
		io.WriteString(w, "<html>hello</html>")
	}))
	defer other.Close()
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>hello</html>") }))
	defer html.Close()
	closed := "127.0.0.1:" + fmt.Sprint(testutil.FreePort(t))
	for _, admin := range []string{other.URL, html.URL, closed} {
		for _, args := range [][]string{{"top", "--once"}, {"top", "--once", "-o", "json"}, {"status"}, {"status", "-o", "json"}, {"config", "dump"}} {
			args = append(args, "--admin", admin)
			code, out, errOut := flexgw(t, args...)
			prefix := "flexgw " + strings.Join(strings.Fields(strings.Split(strings.Join(args, " "), " -")[0]), " ") + ":"
			if code != 1 || out != "" || !strings.HasPrefix(errOut, prefix) || strings.Count(errOut, prefix) != 1 {
				t.Errorf("flexgw %s: exit %d, stdout %q, stderr %q; want exit 1 and one %q error", strings.Join(args, " "), code, out, errOut, prefix)
			}
			if admin != closed && !strings.Contains(errOut, "is not a flexgw admin API") {
				t.Errorf("flexgw %s: %q does not say it is not flexgw", strings.Join(args, " "), errOut)
			}
		}
	}
	if code, _, errOut := flexgw(t, "top", "-o", "json", "--admin", other.URL); code != 2 || !strings.Contains(errOut, "--once") {
		t.Errorf("top -o json without --once: exit %d, %q", code, errOut)
	}
}

// TestAgainstAgent: status, config dump and top --once -o json read a real
// agent's admin API (token required).
func TestAgainstAgent(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer upstream.Close()
	dir := t.TempDir()
	gw := testutil.FreePort(t)
	cfg := fmt.Sprintf("apiVersion: gateway.mulesoft.com/v1alpha1\nkind: ApiInstance\nmetadata:\n  name: orders\nspec:\n  address: http://127.0.0.1:%d\n  services:\n    up:\n      address: %s\n", gw, upstream.URL)
	if err := os.WriteFile(filepath.Join(dir, "orders.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	admin := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- agent.Run(ctx, agent.Options{ConfigDir: dir, AdminAddr: admin, AdminToken: "s3cret", AccessLog: "off", DataPlane: "builtin",
			EBPF: "off", StateDir: t.TempDir(), WatchInterval: time.Second, DrainTimeout: time.Second, Version: "9.9.9", Commit: "c0ffee",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("agent not ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, out, errOut := flexgw(t, "status", "--admin", admin, "--token", "s3cret")
	if code != 0 || errOut != "" || !strings.Contains(out, "9.9.9 (commit c0ffee)") || !strings.Contains(out, "ready      yes") || !strings.Contains(out, "1 API") {
		t.Errorf("status: exit %d, stderr %q\n%s", code, errOut, out)
	}
	code, out, _ = flexgw(t, "status", "--admin", "http://"+admin, "--token", "s3cret", "-o", "json")
	var st agent.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Version != "9.9.9" || !st.Ready {
		t.Errorf("status -o json: exit %d\n%s", code, out)
	}
	code, out, _ = flexgw(t, "config", "dump", "--admin", admin, "--token", "s3cret")
	if code != 0 || !json.Valid([]byte(out)) || !strings.Contains(out, `"orders"`) {
		t.Errorf("config dump: exit %d\n%.500s", code, out)
	}
	code, out, _ = flexgw(t, "top", "--once", "-o", "json", "--admin", admin, "--token", "s3cret")
	if code != 0 || !json.Valid([]byte(out)) || !strings.Contains(out, "orders") {
		t.Errorf("top --once -o json: exit %d\n%.500s", code, out)
	}
	if code, out, errOut := flexgw(t, "status", "--ready", "--admin", strings.Replace(admin, "127.0.0.1", "0.0.0.0", 1), "--token", "s3cret"); code != 0 || out != "" || errOut != "" {
		t.Errorf("status --ready (wildcard address): exit %d, %q, %q", code, out, errOut)
	}
	// Without the token: the agent's 401 reason, exit 1.
	code, _, errOut = flexgw(t, "status", "--admin", admin, "--token", "")
	if code != 1 || !strings.Contains(errOut, "401") || strings.Count(errOut, "flexgw status:") != 1 {
		t.Errorf("status without token: exit %d, %q", code, errOut)
	}
}

// completionScript writes flexgw's completion script for shell to a file.
func completionScript(t *testing.T, shell string) string {
	t.Helper()
	code, out, errOut := flexgw(t, "completion", shell)
	if code != 0 || errOut != "" {
		t.Fatalf("completion %s: exit %d, %q", shell, code, errOut)
	}
	path := filepath.Join(t.TempDir(), "flexgw."+shell)
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func shell(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// TestCompletion drives the completion scripts in the real shells
// (scripts/deps.sh installs zsh and fish).
func TestCompletion(t *testing.T) {
	bash := completionScript(t, "bash")
	complete := func(words ...string) string {
		t.Helper()
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = fmt.Sprintf("%q", w)
		}
		script := fmt.Sprintf(`source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _flexgw; echo "${COMPREPLY[*]}"`, bash, strings.Join(quoted, " "), len(words)-1)
		return strings.TrimSpace(shell(t, "bash", "-c", script))
	}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"flexgw", "ru"}, "run"},
		{[]string{"flexgw", "co"}, "config completion"},
		{[]string{"flexgw", "config", ""}, "dump"},
		{[]string{"flexgw", "run", "--eb"}, "--ebpf"},
		{[]string{"flexgw", "run", "--ebpf", ""}, "auto on off"},
		{[]string{"flexgw", "status", "-o", "j"}, "json"},
		{[]string{"flexgw", "completion", "f"}, "fish"},
		{[]string{"flexgw", "config", "dump", "--to"}, "--token"},
	} {
		if got := complete(tc.words...); got != tc.want {
			t.Errorf("bash completion of %q = %q, want %q", tc.words, got, tc.want)
		}
	}

	zsh := completionScript(t, "zsh")
	shell(t, "zsh", "-n", zsh)
	if out := shell(t, "zsh", "-c", "autoload -U compinit && compinit -u -D; source "+zsh+"; whence -w _flexgw"); !strings.Contains(out, "_flexgw: function") {
		t.Errorf("zsh: completion function not defined: %q", out)
	}

	fish := completionScript(t, "fish")
	fishComplete := func(line string) string {
		return shell(t, "fish", "--no-config", "-c", fmt.Sprintf("source %s; complete -C %q", fish, line))
	}
	if out := fishComplete("flexgw ru"); !strings.HasPrefix(out, "run\tserve the APIs") {
		t.Errorf("fish: flexgw ru → %q", out)
	}
	if out := fishComplete("flexgw run --eb"); !strings.Contains(out, "--ebpf\tkernel latency PROBE") {
		t.Errorf("fish: flexgw run --eb → %q", out)
	}
	if out := fishComplete("flexgw run --ebpf "); !regexp.MustCompile(`^auto\t.*\noff\t.*\non\t.*\n$`).MatchString(out) {
		t.Errorf("fish: flexgw run --ebpf → %q", out)
	}
	if out := fishComplete("flexgw config "); !strings.HasPrefix(out, "dump\t") {
		t.Errorf("fish: flexgw config → %q", out)
	}
	if code, _, errOut := flexgw(t, "completion", "tcsh"); code != 2 || !strings.Contains(errOut, "bash, zsh or fish") {
		t.Errorf("completion tcsh: exit %d, %q", code, errOut)
	}
}

// TestManPage: the man page comes from the same declarations as --help:
// groff formats it without warnings and it documents every command and
// flag.
func TestManPage(t *testing.T) {
	code, page, _ := flexgw(t, "man")
	if code != 0 {
		t.Fatalf("man: exit %d", code)
	}
	cmd := exec.Command("groff", "-man", "-Tascii", "-P-cbou", "-ww")
	cmd.Stdin = strings.NewReader(page)
	var out, warn bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &warn
	if err := cmd.Run(); err != nil || warn.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, warn.String())
	}
	text := strings.Join(strings.Fields(out.String()), " ")
	for _, c := range app().Commands {
		if c.Hidden {
			continue
		}
		if !strings.Contains(text, "flexgw "+c.Name+" "+c.Short) {
			t.Errorf("man page lacks %q", "flexgw "+c.Name)
		}
		for _, f := range c.Flags() {
			if !strings.Contains(text, "--"+f.Name) {
				t.Errorf("man page lacks flexgw %s --%s", c.Name, f.Name)
			}
		}
	}
}
