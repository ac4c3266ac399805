package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/tui/tuitest"
)

// `flexgw top --once` against a live gateway with traffic shows the API
// with a non-zero request rate, and /metrics exposes the request counters.
func TestTopOnceAndMetrics(t *testing.T) {
	up := startUpstream(t, "a", nil)
	port := freePort(t)
	g := startGateway(t, writeConfig(t, map[string]string{"api.yaml": inlineAPI("watched", port, "", up.URL)}))
	for i := 0; i < 50; i++ {
		if code, body, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/api/x", port)); code != 200 {
			t.Fatalf("status %d %s", code, body)
		}
	}
	eventually(t, 15*time.Second, func() string {
		out, err := exec.Command(flexgwBin, "top", "--once", "--admin", "http://"+g.admin, "--width", "160").CombinedOutput()
		if err != nil {
			return fmt.Sprintf("top --once: %v\n%s", err, out)
		}
		rps, ok := tuitest.APIRPS(string(out), "default/watched")
		if !ok || rps <= 0 {
			return fmt.Sprintf("API row rps=%v found=%v in frame:\n%s", rps, ok, out)
		}
		return ""
	})

	_, body, _ := get(t, g.adminURL("/metrics"))
	for _, want := range []string{
		`flexgw_requests_total{api="default/watched"`,
		"flexgw_request_duration_seconds_bucket",
		"flexgw_config_reloads_total",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// The kernel probe runs inside the real gateway (CI runs as root on a
// kernel with BTF): upstream connects made by the gateway are measured and
// exposed under the service name from the config.
func TestKernelProbeInGateway(t *testing.T) {
	up := startUpstream(t, "a", nil)
	port := freePort(t)
	g := startGateway(t, writeConfig(t, map[string]string{"api.yaml": inlineAPI("probed", port, "", up.URL)}), "--ebpf", "on")
	// Each request on a fresh client connection; the gateway reuses its
	// upstream connection, so at least one upstream connect is measured.
	for i := 0; i < 20; i++ {
		if code, body, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/api/x", port)); code != 200 {
			t.Fatalf("status %d %s", code, body)
		}
	}
	eventually(t, 20*time.Second, func() string {
		_, body, _ := get(t, g.adminURL("/metrics"))
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "flexgw_tcp_connect_duration_seconds_count{") &&
				strings.Contains(line, `service="default/probed/backend"`) && !strings.HasSuffix(line, " 0") {
				return ""
			}
		}
		return "no measured upstream connect for default/probed/backend in /metrics"
	})
	code, body, _ := get(t, g.adminURL("/api/v1/ebpf"))
	if code != 200 || !strings.Contains(body, up.Addr) {
		t.Errorf("/api/v1/ebpf = %d, want the upstream %s in %s", code, up.Addr, body)
	}
}

// With --admin-token the admin API needs the bearer token (but /live and
// /ready stay open for probes), and `flexgw top --token` uses it.
func TestAdminToken(t *testing.T) {
	up := startUpstream(t, "a", nil)
	port := freePort(t)
	g := startGateway(t, writeConfig(t, map[string]string{"api.yaml": inlineAPI("guarded", port, "", up.URL)}), "--admin-token", "s3cret")
	if code, _, _ := get(t, g.adminURL("/ready")); code != 200 {
		t.Errorf("/ready without token = %d, want 200", code)
	}
	if code, _, _ := get(t, g.adminURL("/api/v1/status")); code != 401 {
		t.Errorf("/api/v1/status without token = %d, want 401", code)
	}
	if code, _, _ := get(t, g.adminURL("/metrics"), "Authorization", "Bearer wrong"); code != 401 {
		t.Errorf("/metrics with a wrong token = %d, want 401", code)
	}
	if code, _, _ := get(t, g.adminURL("/api/v1/status"), "Authorization", "Bearer s3cret"); code != 200 {
		t.Errorf("/api/v1/status with the token = %d, want 200", code)
	}
	if out, err := exec.Command(flexgwBin, "top", "--once", "--admin", "http://"+g.admin, "--token", "s3cret").CombinedOutput(); err != nil || !strings.Contains(string(out), "default/guarded") {
		t.Errorf("top --once --token: %v\n%s", err, out)
	}
	if out, err := exec.Command(flexgwBin, "top", "--once", "--admin", "http://"+g.admin).CombinedOutput(); err == nil {
		t.Errorf("top --once without the token succeeded:\n%s", out)
	}
}
