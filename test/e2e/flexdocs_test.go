package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/lambdastandin"
)

// flexDocsDir holds one file per Flex Local Mode policy, each the
// configuration exactly as Flex's documentation shows it (written from the
// docs): http://0.0.0.0:8081/<base> is the gateway, 127.0.0.1:9000 the
// upstream, 127.0.0.1:9001 the AWS Lambda endpoint and 127.0.0.1:9002 an
// AWS service reached with signed requests.
const flexDocsDir = "../../policy/testdata/flexdocs"

// probe is one request that shows a fixture's policy acting, and what must
// come of it.
type probe struct {
	method, path, body, ctype string
	hdr                       []string
	// check returns "" when the outcome is right.
	check func(status int, body string, h http.Header) string
}

func wantCode(code int) func(int, string, http.Header) string {
	return func(status int, body string, _ http.Header) string {
		if status != code {
			return fmt.Sprintf("status %d (%q), want %d", status, body, code)
		}
		return ""
	}
}

// TestFlexDocsFixturesThroughBinary: the whole fixture set, as one conf.d,
// through the real binary — `flexgw validate` accepts it, `flexgw run`
// serves it, and one request per policy shows the policy doing what Flex's
// page says. A fixture without a probe here fails the test.
func TestFlexDocsFixturesThroughBinary(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(flexDocsDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	var mu sync.Mutex
	got := map[string]http.Header{} // upstream: path -> request headers
	hits := map[string]int{}
	up := startUpstream(t, "flexdocs", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got[r.URL.Path] = r.Header.Clone()
		hits[r.URL.Path]++
		mu.Unlock()
		// For header-removal-flex's outbound list.
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "upstream %s %s", r.Method, r.URL.Path)
	})
	upHeader := func(path string) http.Header {
		mu.Lock()
		defer mu.Unlock()
		return got[path]
	}
	upHits := func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		return hits[path]
	}
	lambda := lambdastandin.Start("us-east-1", map[string]string{"AKIDFLEXDOCS": "flexdocs-secret"}, func(inv lambdastandin.Invocation) (int, []byte, bool) {
		var in struct {
			RawPath string `json:"raw_path"`
		}
		_ = json.Unmarshal(inv.Payload, &in)
		out, _ := json.Marshal(map[string]any{"status_code": 201, "headers": map[string]string{"x-lambda": "orders"}, "body": "lambda saw " + in.RawPath})
		return 200, out, false
	})
	t.Cleanup(lambda.Close)
	// The AWS service native-aws-signature-flex signs for (API Gateway,
	// execute-api): a stand-in that verifies SigV4 with the AWS SDK.
	awsAPI := lambdastandin.StartService("execute-api", "us-east-1", map[string]string{"AKIDFLEXDOCS": "flexdocs-secret"},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "aws saw %s %s?%s %s", r.Method, r.URL.Path, r.URL.RawQuery, b)
		}))
	t.Cleanup(awsAPI.Close)

	port := freePort(t)
	conf := map[string]string{}
	var served []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "http://0.0.0.0:8081/", fmt.Sprintf("http://127.0.0.1:%d/", port))
		s = strings.ReplaceAll(s, "http://127.0.0.1:9000", up.URL)
		s = strings.ReplaceAll(s, "http://127.0.0.1:9001", lambda.URL)
		s = strings.ReplaceAll(s, "http://127.0.0.1:9002", awsAPI.URL)
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		conf[filepath.Base(f)] = s
		served = append(served, name)
	}
	dir := writeConfig(t, conf)
	if out, err := exec.Command(flexgwBin, "validate", dir).CombinedOutput(); err != nil {
		t.Fatalf("flexgw validate refuses Flex's documented configurations: %v\n%s", err, out)
	}
	g := startGateway(t, dir)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("chris:admin"))
	probes := map[string][]probe{
		"credential-injection-api-key-flex": {{method: "GET", path: "/apikey/k", check: func(s int, b string, _ http.Header) string {
			h := upHeader("/k")
			if s != 200 || h.Get("X-Api-Key") != "my-api-key-value" || h.Get("X-Client-Id") != "my-client-id" {
				return fmt.Sprintf("status %d, upstream headers %v", s, h)
			}
			return ""
		}}},
		"credential-injection-basic-auth-flex": {{method: "GET", path: "/basic/b", check: func(s int, _ string, _ http.Header) string {
			if h := upHeader("/b"); s != 200 || h.Get("X-Upstream-Authorization") != basic {
				return fmt.Sprintf("status %d, upstream x-upstream-authorization %q", s, h.Get("X-Upstream-Authorization"))
			}
			return ""
		}}},
		// The token endpoint of the page (https://oauth-server/tokens) does
		// not exist: with allowRequestWithoutCredential false the request
		// is not sent upstream without its token.
		"credential-injection-oauth2-flex": {{method: "GET", path: "/oauth/o", check: func(s int, b string, _ http.Header) string {
			if s < 500 || upHits("/o") != 0 {
				return fmt.Sprintf("status %d (%q), upstream hits %d: want a 5xx and nothing sent", s, b, upHits("/o"))
			}
			return ""
		}}},
		"http-caching-flex": {
			{method: "GET", path: "/caching/cached", check: wantCode(200)},
			{method: "GET", path: "/caching/cached", check: func(s int, _ string, _ http.Header) string {
				if s != 200 || upHits("/cached") != 1 {
					return fmt.Sprintf("status %d, upstream hits %d: the second GET is not served from the cache", s, upHits("/cached"))
				}
				return ""
			}},
		},
		"idle-timeout-flex":        {{method: "GET", path: "/idle-timeout/i", check: wantCode(200)}},
		"stream-idle-timeout-flex": {{method: "GET", path: "/stream-idle-timeout/s", check: wantCode(200)}},
		"json-threat-protection-flex": {
			{method: "POST", path: "/json/j", ctype: "application/json", body: `{"a":[1,2,3]}`, check: wantCode(200)},
			{method: "POST", path: "/json/j", ctype: "application/json", body: `{"an-entry-name-over-twenty":1}`, check: wantCode(400)},
		},
		"xml-threat-protection-flex": {
			{method: "POST", path: "/xml/x", ctype: "application/xml", body: `<a><b>ok</b></a>`, check: wantCode(200)},
			{method: "POST", path: "/xml/x", ctype: "application/xml", body: strings.Repeat("<a>", 11) + strings.Repeat("</a>", 11), check: wantCode(400)},
		},
		"oauth2-token-introspection-flex": {{method: "GET", path: "/introspection/t", check: wantCode(401)}},
		"rate-limiting-flex": {
			{method: "GET", path: "/ratelimit/r", check: wantCode(200)},
			{method: "GET", path: "/ratelimit/r", check: wantCode(200)},
			{method: "GET", path: "/ratelimit/r", check: func(s int, _ string, h http.Header) string {
				if s != 200 || h.Get("X-Ratelimit-Limit") != "3" || h.Get("X-Ratelimit-Remaining") != "0" {
					return fmt.Sprintf("status %d, headers %v", s, h)
				}
				return ""
			}},
			{method: "GET", path: "/ratelimit/r", check: wantCode(429)},
		},
		"spike-control-flex": {{method: "GET", path: "/spike/s", check: wantCode(200)}},
		"http-basic-authentication-flex": {
			{method: "GET", path: "/basicauth/a", check: wantCode(401)},
			{method: "GET", path: "/basicauth/a", hdr: []string{"Authorization", basic}, check: wantCode(200)},
		},
		// Flex reads the client address from X-Forwarded-For by default;
		// "192.168.2" is the page's partial address (the 192.168.2.0/24 block).
		"ip-allowlist-flex": {
			{method: "GET", path: "/allowlist/a", check: wantCode(403)},
			{method: "GET", path: "/allowlist/a", hdr: []string{"X-Forwarded-For", "192.168.2.77"}, check: wantCode(200)},
			{method: "GET", path: "/allowlist/a", hdr: []string{"X-Forwarded-For", "192.168.3.2"}, check: wantCode(200)},
		},
		"ip-blocklist-flex": {
			{method: "GET", path: "/blocklist/b", check: wantCode(200)},
			{method: "GET", path: "/blocklist/b", hdr: []string{"X-Forwarded-For", "192.168.1.1"}, check: wantCode(403)},
			{method: "GET", path: "/blocklist/b", hdr: []string{"X-Forwarded-For", "192.160.9.9"}, check: wantCode(403)},
		},
		"header-injection-flex": {{method: "GET", path: "/headerinjection/h", check: func(s int, _ string, h http.Header) string {
			if u := upHeader("/h"); s != 200 || u.Get("New-Inbound-Header") == "" || h.Get("New-Outbound-Header") == "" {
				return fmt.Sprintf("status %d, upstream got %q, client got %q", s, u.Get("New-Inbound-Header"), h.Get("New-Outbound-Header"))
			}
			return ""
		}}},
		"header-removal-flex": {{method: "GET", path: "/headerremoval/r", hdr: []string{"Cache-Control", "no-cache", "Access-Control-Request-Private", "1"}, check: func(s int, _ string, h http.Header) string {
			u := upHeader("/r")
			if s != 200 || u.Get("Cache-Control") != "" || u.Get("Access-Control-Request-Private") != "" || h.Get("Access-Control-Allow-Credentials") != "" {
				return fmt.Sprintf("status %d, upstream got %v, client got %v", s, u, h)
			}
			return ""
		}}},
		"message-logging-flex": {{method: "GET", path: "/messagelogging/m", check: func(s int, _ string, _ http.Header) string {
			if s != 200 {
				return fmt.Sprintf("status %d", s)
			}
			return logHas(g, "literal string")
		}}},
		"message-logging-outbound-flex": {{method: "GET", path: "/outboundlogging/o", check: func(s int, _ string, _ http.Header) string {
			if s != 200 {
				return fmt.Sprintf("status %d", s)
			}
			if m := logHas(g, "to upstream: GET"); m != "" {
				return m
			}
			return logHas(g, "upstream answered")
		}}},
		"cors-flex": {{method: "GET", path: "/cors/c", hdr: []string{"Origin", "http://www.the-origin-of-time.com"}, check: func(s int, _ string, h http.Header) string {
			if s != 200 || h.Get("Access-Control-Allow-Origin") != "http://www.the-origin-of-time.com" || h.Get("Access-Control-Allow-Credentials") != "true" {
				return fmt.Sprintf("status %d, headers %v", s, h)
			}
			return ""
		}}},
		// The page's status codes: 400 without a token, 401 for a bad one.
		"jwt-validation-flex": {
			{method: "GET", path: "/jwt/j", check: wantCode(400)},
			{method: "GET", path: "/jwt/j", hdr: []string{"Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"}, check: wantCode(401)},
		},
		"spec-validation-flex": {
			{method: "GET", path: "/specvalidation/items/5", check: wantCode(200)},
			{method: "GET", path: "/specvalidation/items/five", check: wantCode(400)},
		},
		// No Configuration spec.tracing in the set: tracing-flex only
		// overrides the global tracing (as in Flex), the request is served.
		"tracing-flex": {{method: "GET", path: "/tracing/t", check: wantCode(200)}},
		// No credentials: refused before any LDAP or provider call.
		"ldap-authentication-flex":                    {{method: "GET", path: "/ldap/l", check: wantCode(401)}},
		"openidconnect-access-token-enforcement-flex": {{method: "GET", path: "/oidc/o", check: wantCode(401)}},
		// The page's services do not exist here: the request fails closed
		// with Envoy's statuses (ext_authz 403, ext_proc 500), never upstream.
		"native-ext-authz-flex": {{method: "GET", path: "/extauthz/e", check: func(s int, b string, _ http.Header) string {
			if s != 403 || upHits("/e") != 0 {
				return fmt.Sprintf("status %d (%q), upstream hits %d", s, b, upHits("/e"))
			}
			return ""
		}}},
		"native-ext-proc-flex": {{method: "GET", path: "/extproc/p", check: func(s int, b string, _ http.Header) string {
			if s != 500 || upHits("/p") != 0 {
				return fmt.Sprintf("status %d (%q), upstream hits %d", s, b, upHits("/p"))
			}
			return ""
		}}},
		// Signed as sent: the route's /prod prefix, the endpoint's host,
		// the body's hash; the stand-in refuses anything else with 403.
		"native-aws-signature-flex": {{method: "POST", path: "/awssignature/orders?id=7", body: `{"qty":2}`, ctype: "application/json",
			hdr: []string{"X-Custom-Trace", "not-signed"}, check: func(s int, b string, _ http.Header) string {
				if s != 200 || b != `aws saw POST /prod/orders?id=7 {"qty":2}` {
					return fmt.Sprintf("status %d %q (stand-in refused: %q)", s, b, awsAPI.Rejected())
				}
				return ""
			}}},
		"native-aws-lambda": {{method: "GET", path: "/lambda/orders?id=7", check: func(s int, b string, h http.Header) string {
			if s != 201 || h.Get("X-Lambda") != "orders" || b != "lambda saw /lambda/orders?id=7" {
				return fmt.Sprintf("status %d %q %v (stand-in refused: %q)", s, b, h, lambda.Rejected())
			}
			return ""
		}}},
	}
	for _, name := range served {
		t.Run(name, func(t *testing.T) {
			ps, ok := probes[name]
			if !ok {
				t.Fatalf("fixture %s has no probe in TestFlexDocsFixturesThroughBinary", name)
			}
			for i, p := range ps {
				req, err := http.NewRequest(p.method, base+p.path, strings.NewReader(p.body))
				if err != nil {
					t.Fatal(err)
				}
				if p.body == "" {
					req.Body = nil
				}
				if p.ctype != "" {
					req.Header.Set("Content-Type", p.ctype)
				}
				for j := 0; j+1 < len(p.hdr); j += 2 {
					req.Header.Set(p.hdr[j], p.hdr[j+1])
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if msg := p.check(res.StatusCode, string(b), res.Header); msg != "" {
					t.Errorf("probe %d %s %s: %s", i, p.method, p.path, msg)
				}
			}
		})
	}
}

// logHas waits for text in the gateway's log.
func logHas(g *gateway, text string) string {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(g.logs(), text) {
			return ""
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Sprintf("log never shows %q", text)
}
