package policy_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/policy"
)

func TestCORSPublicResource(t *testing.T) {
	up := policytest.NewUpstream(t)
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("cors-flex", map[string]any{}))
	r := g.Do(t, http.MethodOptions, "/", "Origin", "https://app.example", "Access-Control-Request-Method", "PUT", "Access-Control-Request-Headers", "x-a")
	policytest.WantStatus(t, r, http.StatusOK)
	if r.Header.Get("Access-Control-Allow-Origin") != "*" || r.Header.Get("Access-Control-Allow-Methods") != "PUT" || r.Header.Get("Access-Control-Allow-Headers") != "x-a" {
		t.Fatalf("preflight headers %v", r.Header)
	}
	if up.Hits() != 0 {
		t.Fatal("preflight reached the upstream")
	}
	r = g.Get(t, "/", "Origin", "https://app.example")
	policytest.WantStatus(t, r, http.StatusOK)
	if r.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("actual request headers %v", r.Header)
	}
	// No Origin: no CORS headers, request passes.
	if r := g.Get(t, "/"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS headers without Origin")
	}
}

func TestCORSOriginGroups(t *testing.T) {
	up := policytest.NewUpstream(t)
	cfg := map[string]any{
		"publicResource": false, "supportCredentials": true,
		"originGroups": []map[string]any{{
			"origins":             []string{"http://www.the-origin-of-time.com"},
			"accessControlMaxAge": 60,
			"allowedMethods":      []map[string]any{{"methodName": "GET", "isAllowed": true}, {"methodName": "POST", "isAllowed": true}, {"methodName": "DELETE", "isAllowed": false}},
			"headers":             []string{"x-allow-origin"},
			"exposedHeaders":      []string{"x-upstream"},
		}},
	}
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("cors-flex", cfg))
	origin := "http://www.the-origin-of-time.com"
	r := g.Do(t, http.MethodOptions, "/", "Origin", origin, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "X-Allow-Origin")
	if r.Header.Get("Access-Control-Allow-Origin") != origin || r.Header.Get("Access-Control-Allow-Credentials") != "true" || r.Header.Get("Access-Control-Max-Age") != "60" {
		t.Fatalf("preflight headers %v", r.Header)
	}
	// Disallowed method, header, origin: no CORS headers.
	for _, hdr := range [][]string{
		{"Origin", origin, "Access-Control-Request-Method", "DELETE"},
		{"Origin", origin, "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "x-other"},
		{"Origin", "https://evil.example", "Access-Control-Request-Method", "GET"},
	} {
		if r := g.Do(t, http.MethodOptions, "/", hdr...); r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("preflight %v allowed: %v", hdr, r.Header)
		}
	}
	r = g.Get(t, "/", "Origin", origin)
	if r.Header.Get("Access-Control-Allow-Origin") != origin || r.Header.Get("Access-Control-Expose-Headers") != "x-upstream" {
		t.Fatalf("actual request headers %v", r.Header)
	}
	if r := g.Get(t, "/", "Origin", "https://evil.example"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("foreign origin got CORS headers")
	}
}

func TestHeaderInjectionAndRemoval(t *testing.T) {
	up := policytest.NewUpstream(t)
	inj := policytest.Policy("header-injection-flex", map[string]any{
		"inboundHeaders":  []map[string]string{{"key": "x-path", "value": "#[attributes.requestPath]"}, {"key": "x-static", "value": "v1"}},
		"outboundHeaders": []map[string]string{{"key": "x-out", "value": "#['status ' ++ attributes.statusCode]"}},
	})
	rem := policytest.Policy("header-removal-flex", map[string]any{"inboundHeaders": []string{"x-secret", "x-debug-.*"}, "outboundHeaders": []string{"server"}})
	g := policytest.NewGateway(t, policy.Env{}, up, inj, rem)
	r := g.Get(t, "/orders/7", "X-Secret", "s", "X-Debug-A", "1", "X-Debug-B", "2", "X-Keep", "k")
	policytest.WantStatus(t, r, http.StatusOK)
	h := up.LastHeader()
	if h.Get("X-Path") != "/orders/7" || h.Get("X-Static") != "v1" || h.Get("X-Keep") != "k" {
		t.Fatalf("upstream headers %v", h)
	}
	if h.Get("X-Secret") != "" || h.Get("X-Debug-A") != "" || h.Get("X-Debug-B") != "" {
		t.Fatalf("removed headers reached upstream: %v", h)
	}
	if r.Header.Get("X-Out") != "status 200" {
		t.Fatalf("outbound header %q", r.Header.Get("X-Out"))
	}
	if r.Header.Get("Server") != "" || r.Header.Get("X-Upstream") != "yes" {
		t.Fatalf("response headers %v", r.Header)
	}
	if err := policy.Check(policytest.Policy("header-injection-flex", `{}`)); err == nil || !contains(err.Error(), "config.inboundHeaders") {
		t.Fatalf("empty header injection: %v", err)
	}
	if err := policy.Check(policytest.Policy("header-injection-flex", `{"inboundHeaders":[{"key":"bad header","value":"x"}]}`)); err == nil || !contains(err.Error(), "config.inboundHeaders[0].key") {
		t.Fatalf("bad header name: %v", err)
	}
}

// TestHeaderRemovalRegexps: Flex's example removes Cache-Control and every
// header matching Access-Control.* (the whole name, any case); a header
// that only contains the pattern stays.
func TestHeaderRemovalRegexps(t *testing.T) {
	up := policytest.NewUpstream(t)
	rem := policytest.Policy("header-removal-flex", map[string]any{
		"inboundHeaders":  []string{"Cache-Control", "Access-Control.*"},
		"outboundHeaders": []string{"X-Upstream"},
	})
	g := policytest.NewGateway(t, policy.Env{}, up, rem)
	r := g.Get(t, "/", "Cache-Control", "no-cache", "Access-Control-Allow-Credentials", "true",
		"access-control-allow-origin", "*", "X-Access-Control", "kept", "X-Keep", "k")
	policytest.WantStatus(t, r, http.StatusOK)
	h := up.LastHeader()
	for _, gone := range []string{"Cache-Control", "Access-Control-Allow-Credentials", "Access-Control-Allow-Origin"} {
		if h.Get(gone) != "" {
			t.Errorf("%s reached the upstream: %v", gone, h)
		}
	}
	if h.Get("X-Access-Control") != "kept" || h.Get("X-Keep") != "k" {
		t.Errorf("headers that do not match were removed: %v", h)
	}
	if r.Header.Get("X-Upstream") != "" {
		t.Errorf("outbound X-Upstream not removed: %v", r.Header)
	}
	if err := policy.Check(policytest.Policy("header-removal-flex", `{"inboundHeaders":["Access-Control(.*"]}`)); err == nil || !contains(err.Error(), "config.inboundHeaders[0]") {
		t.Errorf("broken expression: %v", err)
	}
}

// testutil.SyncBuffer is a goroutine-safe log sink.
func TestMessageLogging(t *testing.T) {
	var buf testutil.SyncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	up := policytest.NewUpstream(t)
	g := policytest.NewGateway(t, policy.Env{Logger: log}, up, policytest.Policy("message-logging-flex", map[string]any{
		"loggingConfiguration": []map[string]any{
			{"itemName": "before", "itemData": map[string]any{"message": "#['in ' ++ attributes.method ++ ' ' ++ attributes.requestPath]", "level": "INFO", "firstSection": true,
				"conditional": "#[attributes.queryParams['trace'] == 'yes']"}},
			{"itemName": "after", "itemData": map[string]any{"message": "#['out ' ++ attributes.statusCode]", "level": "WARN", "secondSection": true, "category": "audit"}},
		},
	}))
	policytest.WantStatus(t, g.Get(t, "/a?trace=yes"), http.StatusOK)
	policytest.WantStatus(t, g.Get(t, "/b?trace=no"), http.StatusOK)
	out := buf.String()
	if !strings.Contains(out, `"msg":"in GET /a"`) || strings.Contains(out, "in GET /b") {
		t.Fatalf("conditional log wrong:\n%s", out)
	}
	if strings.Count(out, `"msg":"out 200"`) != 2 || !strings.Contains(out, `"category":"audit"`) || !strings.Contains(out, `"component":"policy"`) {
		t.Fatalf("after-section log wrong:\n%s", out)
	}
	if err := policy.Check(policytest.Policy("message-logging-flex", `{"loggingConfiguration":[{"itemName":"x","itemData":{"message":"m","level":"LOUD"}}]}`)); err == nil || !contains(err.Error(), "config.loggingConfiguration[0].itemData.level") {
		t.Fatalf("bad level: %v", err)
	}
}

func TestSpikeControl(t *testing.T) {
	up := policytest.NewUpstream(t)
	// No delay attempts: the third request in the window is rejected at once.
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("spike-control-flex", map[string]any{
		"maximumRequests": 2, "timePeriodInMilliseconds": 60000, "delayAttempts": 0, "exposeHeaders": true}))
	policytest.WantStatus(t, g.Get(t, "/"), http.StatusOK)
	r := g.Get(t, "/")
	policytest.WantStatus(t, r, http.StatusOK)
	if r.Header.Get("X-Ratelimit-Remaining") != "0" {
		t.Fatalf("remaining %q", r.Header.Get("X-Ratelimit-Remaining"))
	}
	r = g.Get(t, "/")
	policytest.WantStatus(t, r, http.StatusTooManyRequests)
	policytest.WantErrorBody(t, r, "spike-control-flex")
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
}

func TestSpikeControlDelaysIntoNextWindow(t *testing.T) {
	up := policytest.NewUpstream(t)
	// A short window and a long enough delay: the over-limit request waits
	// and is admitted in the next window instead of being rejected.
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("spike-control-flex", map[string]any{
		"maximumRequests": 1, "timePeriodInMilliseconds": 50, "delayTimeInMillis": 100, "delayAttempts": 50, "queuingLimit": 5}))
	policytest.WantStatus(t, g.Get(t, "/"), http.StatusOK)
	policytest.WantStatus(t, g.Get(t, "/"), http.StatusOK)
	if up.Hits() != 2 {
		t.Fatalf("upstream hits %d", up.Hits())
	}
	if err := policy.Check(policytest.Policy("spike-control-flex", `{"maximumRequests":1}`)); err == nil || !contains(err.Error(), "config.timePeriodInMilliseconds") {
		t.Fatalf("missing period: %v", err)
	}
}

func TestUnknownPolicy(t *testing.T) {
	err := policy.Check(policytest.Policy("no-such-policy", `{}`))
	if err == nil || !contains(err.Error(), "unknown policy") {
		t.Fatalf("got %v", err)
	}
}
