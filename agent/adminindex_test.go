package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/testutil"
)

// hecStandIn is a stand-in for a Splunk HEC endpoint (the real one is
// SaaS): it accepts every batch as HEC does.
func hecStandIn(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"text":"Success","code":0}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// snakeKeys lists the object keys of a JSON document that are not
// camelCase, with their paths.
func snakeKeys(v any, path string) []string {
	var out []string
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if strings.Contains(k, "_") {
				out = append(out, path+"."+k)
			}
			out = append(out, snakeKeys(val, path+"."+k)...)
		}
	case []any:
		for i, e := range t {
			out = append(out, snakeKeys(e, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return out
}

// TestAdminNaming drives a real agent (built-in data plane, the log
// pipeline shipping to a HEC stand-in) over its admin socket: / is an
// index of the endpoints, each of which answers; the JSON endpoints use
// one key style; an exporter that never failed shows no lastErrorAt; and
// /metrics carries flexgw_build_info.
func TestAdminNaming(t *testing.T) {
	dir := t.TempDir()
	port := testutil.FreePort(t)
	writeConfig(t, dir, "api.yaml", apiYAML(port, upstream(t, "a").URL)+splunkConfig(hecStandIn(t).URL))
	logs := &testutil.SyncBuffer{}
	o := testOptions(t, dir, logs)
	o.Version, o.Commit = "v9.9.9-test", "abc1234"
	ta := startAgent(t, o, logs)
	base := "http://" + ta.admin

	// Traffic, so the exporter sends (and succeeds) at least once.
	if code, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/x", port)); code != http.StatusOK {
		t.Fatalf("request through the gateway: %d", code)
	}

	code, body := get(t, base+"/")
	if code != http.StatusOK {
		t.Fatalf("GET / = %d %s, want the index", code, body)
	}
	var index struct {
		Endpoints []adminEndpoint `json:"endpoints"`
	}
	if err := json.Unmarshal([]byte(body), &index); err != nil {
		t.Fatalf("GET /: %v\n%s", err, body)
	}
	listed := map[string]bool{}
	for _, e := range index.Endpoints {
		listed[e.Path] = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, e.Method, base+e.Path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("index lists %s %s: %v", e.Method, e.Path, err)
		} else {
			if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
				t.Errorf("index lists %s %s, which answers %d", e.Method, e.Path, resp.StatusCode)
			}
			resp.Body.Close() // the log stream ends here, not at its end
		}
		cancel()
	}
	for _, p := range []string{"/metrics", "/api/v1/status", "/api/v1/top", "/api/v1/logpipe", "/api/v1/logs/stream"} {
		if !listed[p] {
			t.Errorf("index does not list %s: %s", p, body)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(page), `<a href="/api/v1/top">`) {
		t.Errorf("GET / for a browser: %s\n%s", resp.Header.Get("Content-Type"), page)
	}
	if code, _ := get(t, base+"/nope"); code != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", code)
	}

	// The exporter has sent and never failed.
	eventually(t, 20*time.Second, func() string {
		_, b := get(t, base+"/api/v1/logpipe")
		if !strings.Contains(b, `"sent": 1`) && !regexp.MustCompile(`"sent": [1-9]`).MatchString(b) {
			return "no record sent yet: " + b
		}
		return ""
	})
	for _, p := range []string{"/api/v1/logpipe", "/api/v1/top", "/api/v1/status"} {
		_, b := get(t, base+p)
		var v any
		if err := json.Unmarshal([]byte(b), &v); err != nil {
			t.Fatalf("%s: %v\n%s", p, err, b)
		}
		if bad := snakeKeys(v, p); len(bad) > 0 {
			t.Errorf("%s has keys that are not camelCase: %v", p, bad)
		}
		if strings.Contains(b, "lastErrorAt") || strings.Contains(b, "0001-01-01") {
			t.Errorf("%s shows a last error time for an exporter that never failed:\n%s", p, b)
		}
	}

	_, metrics := get(t, base+"/metrics")
	want := fmt.Sprintf(`flexgw_build_info{commit="abc1234",goversion=%q,version="v9.9.9-test"} 1`, runtime.Version())
	if !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

// splunkConfig is a Configuration document shipping access logs to a
// HEC endpoint.
func splunkConfig(endpoint string) string {
	return fmt.Sprintf(`---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: Configuration
metadata:
  name: logging
spec:
  logging:
    outputs:
      - name: splunk
        type: splunk
        parameters:
          endpoint: %s
          splunk_token: t0ken
    accessLogs:
      outputs: [splunk]
`, endpoint)
}
