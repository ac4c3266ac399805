package e2e

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/flexgw/flexgw/exporters/exportertest"
)

// Access-log records of real requests reach Splunk through the in-process
// pipeline (HEC stand-in written to Splunk's published protocol), and the
// client's Authorization value never appears in what the exporter sends.
func TestAccessLogsReachSplunkRedacted(t *testing.T) {
	hec := exportertest.NewHEC("e2e-token")
	defer hec.Close()
	hec.KeepBodies()
	up := startUpstream(t, "a", nil)
	port := freePort(t)
	cfg := inlineAPI("shipped", port, "", up.URL) + splunkLogging(hec.URL, "e2e-token")
	startGateway(t, writeConfig(t, map[string]string{"api.yaml": cfg}),
		"--log-redact-query", "api_key", "--log-labels", "env=lab-x9")
	const secret = "Basic c3VwZXItc2VjcmV0LXBhc3N3b3Jk"
	const n = 25
	for i := 0; i < n; i++ {
		if code, body, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/api/req-%d?api_key=qk-7781&page=2", port, i), "Authorization", secret); code != 200 {
			t.Fatalf("status %d %s", code, body)
		}
	}
	if !hec.WaitUnique(n, 30*time.Second) {
		t.Fatalf("HEC stand-in received %d unique events, want %d (problems: %v)", hec.Unique(), n, hec.Problems())
	}
	if p := hec.Problems(); len(p) > 0 {
		t.Errorf("protocol problems seen by the HEC stand-in: %v", p)
	}
	var all []byte
	for _, e := range hec.Events() {
		all = append(all, e...)
	}
	for _, b := range hec.Bodies() {
		all = append(all, b...)
	}
	if bytes.Contains(all, []byte("c3VwZXItc2VjcmV0LXBhc3N3b3Jk")) {
		t.Error("the Authorization value reached the exporter")
	}
	if bytes.Contains(all, []byte("qk-7781")) {
		t.Error("the api_key query parameter named by --log-redact-query reached the exporter")
	}
	for _, want := range []string{`/api/req-0`, `page=2`, `default/shipped`, `lab-x9`} {
		if !bytes.Contains(all, []byte(want)) {
			t.Errorf("exported events lack %q", want)
		}
	}
}

// splunkLogging is a Configuration document that ships access logs to a
// Splunk HEC endpoint.
func splunkLogging(endpoint, token string) string {
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
          splunk_token: %s
    accessLogs:
      outputs: [splunk]
`, endpoint, token)
}
