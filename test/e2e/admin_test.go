package e2e

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestAdminExposureNeedsToken: `flexgw run --admin 0.0.0.0:…` without a
// token refuses to start and says how to fix it; with the token from the
// environment (as the Docker images pass it) or --admin-insecure it serves.
func TestAdminExposureNeedsToken(t *testing.T) {
	dir := writeConfig(t, map[string]string{"README": "empty\n"})
	out, err := exec.Command(flexgwBin, "run", "--config", dir, "--admin", "0.0.0.0:0", "--ebpf", "off",
		"--dataplane", "builtin", "--state-dir", t.TempDir()).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
		t.Fatalf("run with an exposed, token-less admin API: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--admin 0.0.0.0:0 is reachable from other hosts") || !strings.Contains(string(out), "--admin-token") {
		t.Errorf("the refusal does not say why and how to fix it:\n%s", out)
	}

	t.Setenv("FLEXGW_ADMIN_TOKEN", "from-env")
	g := startGateway(t, dir, "--admin", "0.0.0.0:0")
	if code, _, _ := get(t, g.adminURL("/api/v1/status")); code != 401 {
		t.Errorf("token from the environment not required: %d", code)
	}
	if code, _, _ := get(t, g.adminURL("/api/v1/status"), "Authorization", "Bearer from-env"); code != 200 {
		t.Errorf("token from the environment not accepted: %d", code)
	}
	g.kill()

	os.Unsetenv("FLEXGW_ADMIN_TOKEN")
	g = startGateway(t, dir, "--admin", "0.0.0.0:0", "--admin-insecure")
	if code, _, _ := get(t, g.adminURL("/api/v1/status")); code != 200 {
		t.Errorf("--admin-insecure: %d", code)
	}
	g.waitLog(t, "without a token (--admin-insecure)", "--admin-insecure not warned about")
}

// TestDockerfileAdminFollowsTheRule reads every stage of the Dockerfile
// and checks its admin API follows the --admin rule: loopback by default,
// never --admin-insecure, no token baked into the image; and that exposing
// it with FLEXGW_ADMIN as the image's comment says, but without a token,
// makes the binary refuse to start.
func TestDockerfileAdminFollowsTheRule(t *testing.T) {
	data, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	type stage struct {
		name string
		env  map[string]string
		args []string // ENTRYPOINT then CMD, without the binary
	}
	var stages []*stage
	var cur *stage
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			cur = &stage{name: f[len(f)-1], env: map[string]string{}}
			stages = append(stages, cur)
		case "ENV":
			for _, kv := range f[1:] {
				if k, v, ok := strings.Cut(kv, "="); ok {
					cur.env[k] = v
				}
			}
		case "ENTRYPOINT", "CMD":
			var argv []string
			if err := json.Unmarshal([]byte(strings.TrimSpace(line[len(f[0]):])), &argv); err != nil {
				t.Fatalf("%s: %s is not in exec form: %v", cur.name, f[0], err)
			}
			if strings.ToUpper(f[0]) == "ENTRYPOINT" {
				cur.args = argv[1:]
			} else {
				cur.args = append(cur.args, argv...)
			}
		}
	}
	checked := 0
	for _, s := range stages {
		if s.args == nil {
			continue // a build stage
		}
		checked++
		admin := s.env["FLEXGW_ADMIN"]
		for i, a := range s.args {
			if a == "--admin-insecure" {
				t.Errorf("stage %s passes --admin-insecure", s.name)
			}
			if a == "--admin" && i+1 < len(s.args) {
				admin = s.args[i+1]
			}
		}
		if _, ok := s.env["FLEXGW_ADMIN_TOKEN"]; ok {
			t.Errorf("stage %s bakes an admin token into the image", s.name)
		}
		host, _, err := net.SplitHostPort(admin)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			t.Errorf("stage %s: admin API on %q, want loopback unless exposed with a token", s.name, admin)
		}

		// Expose it as the image's comment says, but without the token:
		// the binary refuses, so the image cannot run an open admin API.
		args := []string{}
		for i := 0; i < len(s.args); i++ {
			switch s.args[i] {
			case "--config", "--state-dir", "--dataplane":
				i++
				continue
			}
			args = append(args, s.args[i])
		}
		dir := writeConfig(t, map[string]string{"README": "empty\n"})
		for k, v := range s.env {
			t.Setenv(k, v)
		}
		t.Setenv("FLEXGW_ADMIN", "0.0.0.0:0")
		out, err := exec.Command(flexgwBin, append(append([]string{}, args...), "--config", dir, "--dataplane", "builtin", "--ebpf", "off", "--state-dir", t.TempDir())...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--admin 0.0.0.0:0 is reachable from other hosts") {
			t.Errorf("stage %s exposed without a token: err=%v\n%s", s.name, err, out)
		}
	}
	if checked < 2 {
		t.Fatalf("found %d runnable stages in the Dockerfile, want the envoy and builtin images", checked)
	}
}
