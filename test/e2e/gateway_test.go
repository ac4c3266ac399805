package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func inlineAPI(name string, port int, basePath, upstreamURL string) string {
	return fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: %s
spec:
  address: http://127.0.0.1:%d%s
  services:
    backend:
      address: %s
      routes:
        - rules:
            - path: /api(/.*)
          config:
            destinationPath: /v1
        - config:
            destinationPath: /rest
`, name, port, basePath, upstreamURL)
}

func TestServesInlineAndResourceModels(t *testing.T) {
	up := startUpstream(t, "orders", nil)
	port := freePort(t)
	dir := writeConfig(t, map[string]string{
		"inline.yaml": inlineAPI("orders-api", port, "/orders", up.URL),
		"resources.yaml": fmt.Sprintf(`---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: catalog
  namespace: shop
spec:
  address: http://127.0.0.1:%d/catalog
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: Service
metadata:
  name: catalog-svc
  namespace: shop
spec:
  address: %s
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: PolicyBinding
metadata:
  name: catalog-route
  namespace: shop
spec:
  targetRef:
    name: catalog
  policyRef:
    name: route
  config:
    destinationRef:
      name: catalog-svc
  rules:
    - path: /items(/.*)
      methods: GET|HEAD
`, port, up.URL),
	})
	g := startGateway(t, dir)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	cases := []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/orders/api/list?x=1", 200, "orders GET /v1/list?x=1"}, // capture group rewrite + destinationPath
		{"/orders/other", 200, "orders GET /rest/other"},         // catch-all second route
		{"/catalog/items/42", 200, "orders GET /42"},             // resource model, capture rewrite
		{"/catalog/nothing", 404, ""},                            // no rule matches
		{"/unknown", 404, ""},                                    // no API owns the path
	}
	for _, c := range cases {
		code, body, _ := get(t, base+c.path)
		if code != c.wantCode {
			t.Errorf("GET %s: status %d, want %d (body %q)", c.path, code, c.wantCode, body)
			continue
		}
		if c.wantBody != "" && body != c.wantBody {
			t.Errorf("GET %s: body %q, want %q", c.path, body, c.wantBody)
		}
	}

	// The access log holds one JSON object per request with config names.
	eventually(t, 10*time.Second, func() string {
		recs := readAccessLog(t, g.accessLog)
		if len(recs) < len(cases) {
			return fmt.Sprintf("%d access-log records, want %d", len(recs), len(cases))
		}
		return ""
	})
	recs := readAccessLog(t, g.accessLog)
	var sawCatalog bool
	for _, r := range recs {
		if r["api_instance"] == nil && r["response_code"].(float64) == 200 {
			t.Errorf("record without api_instance: %v", r)
		}
		if r["route"] == "catalog-route" {
			sawCatalog = true
		}
		for _, f := range []string{"start_time", "method", "path", "response_code", "request_id", "duration", "gateway_id"} {
			if r[f] == nil {
				t.Errorf("record missing %s: %v", f, r)
			}
		}
	}
	if !sawCatalog {
		t.Errorf("no record with route catalog-route in %v", recs)
	}
}

func readAccessLog(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("access log line is not JSON: %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestAdminAPI(t *testing.T) {
	up := startUpstream(t, "a", nil)
	port := freePort(t)
	dir := writeConfig(t, map[string]string{"api.yaml": inlineAPI("secret-api", port, "", up.URL) + `  policies:
    - policyRef:
        name: http-basic-authentication-flex
      config:
        username: chris
        password: hunter2-very-secret
`})
	g := startGateway(t, dir)

	code, body, _ := get(t, g.adminURL("/ready"))
	if code != 200 {
		t.Errorf("/ready = %d %s", code, body)
	}
	if code, _, _ := get(t, g.adminURL("/live")); code != 200 {
		t.Errorf("/live = %d", code)
	}
	code, body, _ = get(t, g.adminURL("/api/v1/config"))
	if code != 200 || !strings.Contains(body, "secret-api") {
		t.Errorf("/api/v1/config = %d %s", code, body)
	}
	if strings.Contains(body, "hunter2-very-secret") {
		t.Errorf("/api/v1/config leaks the basic-auth password: %s", body)
	}
	code, body, _ = get(t, g.adminURL("/api/v1/status"))
	var st struct {
		Version         string `json:"version"`
		SnapshotVersion uint64 `json:"snapshotVersion"`
		LastReload      struct {
			Result string `json:"result"`
		} `json:"lastReload"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != 200 {
		t.Fatalf("/api/v1/status = %d %s (%v)", code, body, err)
	}
	if st.Version != "e2e" || st.SnapshotVersion != 1 || st.LastReload.Result != "success" {
		t.Errorf("status = %+v", st)
	}
	if code, _, _ := get(t, g.adminURL("/nope")); code != 404 {
		t.Errorf("/nope = %d, want 404", code)
	}
}

func TestHotReload(t *testing.T) {
	a := startUpstream(t, "a", nil)
	b := startUpstream(t, "b", nil)
	port := freePort(t)
	dir := writeConfig(t, map[string]string{"api.yaml": inlineAPI("reload", port, "", a.URL)})
	g := startGateway(t, dir)
	url := fmt.Sprintf("http://127.0.0.1:%d/x", port)

	// Continuous traffic during every reload: no request may fail.
	var failures, total atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(url)
				total.Add(1)
				if err != nil || resp.StatusCode != 200 {
					failures.Add(1)
					if err == nil {
						resp.Body.Close()
					}
					continue
				}
				resp.Body.Close()
			}
		}()
	}

	// A valid change switches the upstream.
	writeFile(t, filepath.Join(dir, "api.yaml"), inlineAPI("reload", port, "", b.URL))
	eventually(t, 20*time.Second, func() string {
		if _, body, _ := get(t, url); !strings.HasPrefix(body, "b ") {
			return "still served by " + body + "\n" + g.logs()
		}
		return ""
	})

	// An invalid change is rejected; the last good snapshot keeps serving.
	writeFile(t, filepath.Join(dir, "api.yaml"), inlineAPI("reload", port, "", b.URL)+"        - rules:\n            - path: \"/bad(\"\n")
	eventually(t, 20*time.Second, func() string {
		_, body, _ := get(t, g.adminURL("/api/v1/status"))
		if !strings.Contains(body, `"result": "failure"`) {
			return "status has no failed reload: " + body
		}
		if !strings.Contains(body, "api.yaml:") {
			return "failed reload error does not name the file: " + body
		}
		return ""
	})
	g.waitLog(t, "api.yaml:", "rejection log does not name the file")
	if _, body, _ := get(t, url); !strings.HasPrefix(body, "b ") {
		t.Errorf("after a rejected reload the gateway serves %q, want the last good config", body)
	}

	// Back to a valid config: a new snapshot version serves.
	writeFile(t, filepath.Join(dir, "api.yaml"), inlineAPI("reload", port, "", a.URL))
	eventually(t, 20*time.Second, func() string {
		if _, body, _ := get(t, url); !strings.HasPrefix(body, "a ") {
			return "still served by " + body
		}
		return ""
	})
	close(stop)
	wg.Wait()
	if failures.Load() != 0 {
		t.Errorf("%d of %d requests failed during reloads", failures.Load(), total.Load())
	}
	t.Logf("%d requests during reloads, 0 failed", total.Load())
}

func TestValidateCommand(t *testing.T) {
	good := writeConfig(t, map[string]string{"api.yaml": inlineAPI("ok", 8081, "", "http://127.0.0.1:9000")})
	out, err := exec.Command(flexgwBin, "validate", good).CombinedOutput()
	if err != nil {
		t.Fatalf("validate good config: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "1 API") {
		t.Errorf("summary %q does not count the API", out)
	}

	bad := writeConfig(t, map[string]string{"bad.yaml": `apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: broken
spec:
  address: http://0.0.0.0:8081
  servces: {}
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: Gateway
metadata:
  name: what
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: Configuration
metadata:
  name: logs
spec:
  logging:
    outputs:
      - name: s
        type: splunk
        parameters:
          bogus_param: x
`})
	cmd := exec.Command(flexgwBin, "validate", bad)
	out, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("validate bad config: err=%v, want exit 1\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 {
		t.Fatalf("want a line per problem, got:\n%s", out)
	}
	for _, l := range lines {
		if !strings.Contains(l, "bad.yaml:") {
			t.Errorf("problem line %q does not start with FILE:LINE", l)
		}
	}
	// Structural problems and log-output problems come in one report.
	for _, want := range []string{"servces", "Gateway", "bogus_param"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("problems do not mention %q:\n%s", want, out)
		}
	}
}

func TestStartupErrors(t *testing.T) {
	t.Run("missing dir", func(t *testing.T) {
		out, err := exec.Command(flexgwBin, "run", "--config", "/nonexistent/flexgw", "--admin", "127.0.0.1:0", "--ebpf", "off").CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("err=%v, want exit 1\n%s", err, out)
		}
		if !strings.Contains(string(out), "/nonexistent/flexgw") {
			t.Errorf("error does not name the dir: %s", out)
		}
	})
	t.Run("port in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		port := ln.Addr().(*net.TCPAddr).Port
		dir := writeConfig(t, map[string]string{"api.yaml": inlineAPI("busy", port, "", "http://127.0.0.1:9")})
		out, err := exec.Command(flexgwBin, "run", "--config", dir, "--admin", "127.0.0.1:0", "--ebpf", "off", "--dataplane", "builtin", "--access-log", "off").CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("err=%v, want exit 1\n%s", err, out)
		}
		if !strings.Contains(string(out), fmt.Sprintf("127.0.0.1:%d", port)) {
			t.Errorf("error does not name the address: %s", out)
		}
	})
}

func TestUpstreamFailures(t *testing.T) {
	// A port with nothing listening: connection refused.
	deadPort := freePort(t)
	hang := startUpstream(t, "hang", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers; returns when the gateway gives up
	})
	port := freePort(t)
	dir := writeConfig(t, map[string]string{"api.yaml": fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: failing
spec:
  address: http://127.0.0.1:%d
  services:
    dead:
      address: http://127.0.0.1:%d
      routes:
        - rules:
            - path: /dead(/.*)
    slow:
      address: %s
      routes:
        - rules:
            - path: /slow(/.*)
          config:
            timeout: 300ms
`, port, deadPort, hang.URL)})
	g := startGateway(t, dir)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	code, body, hdr := get(t, base+"/dead/x")
	if code != 502 || !strings.Contains(hdr.Get("Content-Type"), "json") {
		t.Errorf("refused upstream: %d %q %v, want 502 JSON", code, body, hdr)
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(body), &e); err != nil || e["error"] == nil {
		t.Errorf("502 body is not a JSON error: %q", body)
	}
	code, _, _ = get(t, base+"/slow/x")
	if code != 504 {
		t.Errorf("hanging upstream: %d, want 504", code)
	}
	eventually(t, 10*time.Second, func() string {
		flags := map[float64]string{}
		for _, r := range readAccessLog(t, g.accessLog) {
			if f, ok := r["response_flags"].(string); ok {
				flags[r["response_code"].(float64)] = f
			}
		}
		if !strings.Contains(flags[502], "UF") {
			return fmt.Sprintf("502 record flags %q, want UF", flags[502])
		}
		if !strings.Contains(flags[504], "UT") {
			return fmt.Sprintf("504 record flags %q, want UT", flags[504])
		}
		return ""
	})
}

func TestBadRequests(t *testing.T) {
	up := startUpstream(t, "a", nil)
	port := freePort(t)
	startGateway(t, writeConfig(t, map[string]string{"api.yaml": inlineAPI("bad", port, "", up.URL)}))
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	rawStatus := func(req string) string {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	if got := rawStatus("GARBAGE\r\n\r\n"); !strings.Contains(got, " 400 ") {
		t.Errorf("malformed request: %q, want 400", got)
	}
	big := "GET /x HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n"
	if got := rawStatus(big); !strings.Contains(got, " 431 ") {
		t.Errorf("70 KiB of headers: %q, want 431", got)
	}
}

func TestGracefulShutdownDrains(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	up := startUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		fmt.Fprint(w, "finished")
	})
	port := freePort(t)
	g := startGateway(t, writeConfig(t, map[string]string{"api.yaml": inlineAPI("drain", port, "", up.URL)}))

	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/x", port))
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b := make([]byte, 64)
		n, _ := resp.Body.Read(b)
		done <- result{code: resp.StatusCode, body: string(b[:n])}
	}()
	<-entered
	g.signal(syscall.SIGTERM)
	// The gateway reports draining and stops accepting new work.
	eventually(t, 10*time.Second, func() string {
		resp, err := http.Get(g.adminURL("/ready"))
		if err != nil {
			return "" // admin already closed is fine too
		}
		resp.Body.Close()
		if resp.StatusCode != 503 {
			return fmt.Sprintf("/ready = %d while draining", resp.StatusCode)
		}
		return ""
	})
	close(release)
	r := <-done
	if r.err != nil || r.code != 200 || r.body != "finished" {
		t.Errorf("in-flight request during drain: %+v", r)
	}
	if code := g.waitExit(t, 20*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0\n%s", code, g.logs())
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(flexgwBin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "e2e") || !strings.Contains(string(out), "test") {
		t.Errorf("version: %v %q", err, out)
	}
}
