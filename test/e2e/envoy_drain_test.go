package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/flexgw/flexgw/exporters/exportertest"
	"github.com/flexgw/flexgw/internal/testutil"
)

// In Envoy mode the access-log lines of requests Envoy finishes while the
// gateway drains are still shipped: the agent follows Envoy's log until
// Envoy has exited. The stand-in Envoy writes one line when it receives
// SIGTERM (the last step of the drain); it must reach the Splunk HEC
// stand-in before flexgw exits. The line also records whether the agent's
// gRPC server (ADS, and the rate-limit and ext_authz services requests in
// flight still call) was up until then.
func TestEnvoyModeShipsLinesWrittenWhileDraining(t *testing.T) {
	bin := testutil.FakeEnvoyT(t)
	t.Setenv("FAKE_ENVOY_ADS", "1")
	hec := exportertest.NewHEC("drain-token")
	defer hec.Close()
	hec.KeepBodies()
	cfg := inlineAPI("dr", freePort(t), "", "http://127.0.0.1:9") + splunkLogging(hec.URL, "drain-token")
	envoyAdmin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	g := startGateway(t, writeConfig(t, map[string]string{"api.yaml": cfg}),
		"--dataplane", "envoy", "--envoy-path", bin, "--envoy-admin", envoyAdmin,
		"--xds-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)))

	serve := func(query string, reqs ...emRequest) (int, string) {
		b, _ := json.Marshal(reqs)
		resp, err := http.Post("http://"+envoyAdmin+"/test/requests"+query, "application/json", bytes.NewReader(b))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	// The agent follows the log from its end as it was at start: write
	// warm-up lines until one is shipped.
	eventually(t, 60*time.Second, func() string {
		if code, body := serve("", emRequest{Method: "GET", Path: "/api/warmup", Code: 200, DurationMs: 1, API: "default/dr", Route: "backend-0"}); code != http.StatusOK {
			return fmt.Sprintf("stand-in Envoy has not written access-log lines: %d %s", code, body)
		}
		if !bytes.Contains(bytes.Join(hec.Bodies(), nil), []byte("/api/warmup")) {
			return "no warm-up line shipped yet"
		}
		return ""
	})
	if code, body := serve("?at=exit", emRequest{Method: "POST", Path: "/api/finished-while-draining/ads-{ads}", Code: 201, DurationMs: 3,
		API: "default/dr", Route: "backend-0"}); code != http.StatusOK {
		t.Fatalf("stand-in Envoy: %d %s", code, body)
	}

	g.signal(syscall.SIGTERM)
	if code := g.waitExit(t, 60*time.Second); code != 0 {
		t.Fatalf("flexgw exited with %d\n%s", code, g.logs())
	}
	shipped := bytes.Join(hec.Bodies(), nil)
	if !bytes.Contains(shipped, []byte("/api/finished-while-draining")) {
		t.Fatalf("the line Envoy wrote while draining was not shipped before flexgw exited\n%s", g.logs())
	}
	if !bytes.Contains(shipped, []byte("/api/finished-while-draining/ads-up")) {
		t.Errorf("the agent's gRPC server (ADS, rate limits, ext_authz) stopped before Envoy finished draining\n%s", g.logs())
	}
}
