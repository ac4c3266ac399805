package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flexgw/flexgw/exporters/exportertest"
	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/logpipe/fluentbit/flbtest"
)

// In Envoy mode with fluent-bit on PATH and the plugin installed, the
// agent renders Fluent Bit's config and supervises the real Fluent Bit,
// which tails Envoy's access log into the plugin and on to Splunk (a HEC
// stand-in). Envoy cannot run here: the stand-in Envoy writes the
// access-log lines, in the json_format the agent pushed over LDS, for the
// requests the test says it served.
func TestEnvoyModeShipsThroughRealFluentBit(t *testing.T) {
	flb := flbtest.Binary(t)
	plugin := testutil.PluginLibrary(t)
	pathDir := t.TempDir()
	if err := os.Symlink(flb, filepath.Join(pathDir, "fluent-bit")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", pathDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	envoyBin := testutil.FakeEnvoyT(t)
	t.Setenv("FAKE_ENVOY_ADS", "1")
	hec := exportertest.NewHEC("flb-e2e")
	defer hec.Close()
	envoyAdmin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := inlineAPI("shipped", freePort(t), "", "http://127.0.0.1:9") + splunkLogging(hec.URL, "flb-e2e")
	g := startGateway(t, writeConfig(t, map[string]string{"api.yaml": cfg}),
		"--dataplane", "envoy", "--envoy-path", envoyBin, "--envoy-admin", envoyAdmin,
		"--xds-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--fluent-bit-plugin", plugin)
	eventually(t, 30*time.Second, func() string {
		if !strings.Contains(g.logs(), "log shipping through fluent-bit") {
			return "the agent did not start Fluent Bit:\n" + g.logs()
		}
		return ""
	})

	const n = 300
	type served struct {
		Method  string            `json:"method"`
		Path    string            `json:"path"`
		Code    int               `json:"code"`
		API     string            `json:"api"`
		Route   string            `json:"route"`
		Headers map[string]string `json:"headers"`
	}
	reqs := make([]served, n)
	for i := range reqs {
		reqs[i] = served{Method: "GET", Path: fmt.Sprintf("/api/items/%d", i), Code: 200, API: "default/shipped", Route: "backend-0",
			Headers: map[string]string{"x-request-id": fmt.Sprintf("flb-e2e-%d", i)}}
	}
	body, _ := json.Marshal(reqs)
	// 503 until the stand-in Envoy has the access log from LDS.
	eventually(t, 60*time.Second, func() string {
		resp, err := http.Post("http://"+envoyAdmin+"/test/requests", "application/json", bytes.NewReader(body))
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Sprintf("stand-in Envoy: %d %s", resp.StatusCode, b)
		}
		return ""
	})
	if !hec.WaitUnique(n, 2*time.Minute) {
		t.Fatalf("HEC received %d of %d records through Fluent Bit\n%s", hec.Unique(), n, g.logs())
	}
	for id, c := range hec.Counts() {
		if !strings.HasPrefix(id, "flb-e2e-") || c != 1 {
			t.Errorf("record %q arrived %d times", id, c)
		}
	}
	if p := hec.Problems(); len(p) > 0 {
		t.Errorf("HEC stand-in saw protocol problems: %v", p)
	}
	if !strings.Contains(g.logs(), "fluent-bit started") {
		t.Errorf("no supervised fluent-bit in the agent's log:\n%s", g.logs())
	}
	g.signal(syscall.SIGTERM)
	if code := g.waitExit(t, 60*time.Second); code != 0 {
		t.Errorf("exit %d\n%s", code, g.logs())
	}
}
