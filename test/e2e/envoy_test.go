package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/tui/tuitest"
)

// The Envoy data plane through the real binary. Envoy cannot be installed
// on the build machines, so the Envoy here is the supervisor tests'
// stand-in (envoy/supervisor/testdata/fakeenvoy): it reads the bootstrap
// flexgw renders, serves the admin endpoints, and plays Envoy's ADS client,
// ACKing what the agent pushes. The access-log lines Envoy would write are
// appended to the log file by the test, in the json_format shape.
func TestEnvoyDataPlaneWithStandIn(t *testing.T) {
	bin := testutil.FakeEnvoyT(t)
	t.Setenv("FAKE_ENVOY_ADS", "1")
	port := freePort(t)
	dir := writeConfig(t, map[string]string{"api.yaml": inlineAPI("via-envoy", port, "", "http://127.0.0.1:9")})
	g := startGateway(t, dir, "--dataplane", "envoy", "--envoy-path", bin,
		"--envoy-admin", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--xds-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)))

	eventually(t, 30*time.Second, func() string {
		_, body, _ := get(t, g.adminURL("/api/v1/status"))
		if !strings.Contains(body, `"dataplane": "envoy"`) || strings.Contains(body, `"nodes": []`) || !strings.Contains(body, `"nodes"`) {
			return "status shows no connected Envoy node: " + body
		}
		return ""
	})

	// Envoy writes its access log; the agent tails it into flexgw top.
	f, err := os.OpenFile(g.accessLog, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		fmt.Fprintf(f, `{"start_time":"%s","method":"GET","path":"/api/%d","protocol":"HTTP/1.1","response_code":200,"response_flags":"-","bytes_received":0,"bytes_sent":5,"duration":2,"upstream_service_time":1,"request_id":"envoy-%d","api_instance":"default/via-envoy","route":"backend-0","gateway_id":"gw","upstream_cluster":"default/via-envoy/backend"}`+"\n",
			time.Now().UTC().Format(time.RFC3339Nano), i, i)
	}
	f.Close()
	eventually(t, 20*time.Second, func() string {
		out, err := exec.Command(flexgwBin, "top", "--once", "--admin", "http://"+g.admin, "--width", "160").CombinedOutput()
		if err != nil {
			return fmt.Sprintf("top --once: %v\n%s", err, out)
		}
		if rps, ok := tuitest.APIRPS(string(out), "default/via-envoy"); !ok || rps <= 0 {
			return "top shows no traffic for default/via-envoy:\n" + string(out)
		}
		return ""
	})

	g.signal(syscall.SIGTERM)
	if code := g.waitExit(t, 30*time.Second); code != 0 {
		t.Errorf("exit %d\n%s", code, g.logs())
	}
}
