package policy_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

func TestIPAllowlist(t *testing.T) {
	up := newUpstream(t)
	g := newGateway(t, policy.Env{}, up, mkPolicy("ip-allowlist-flex", map[string]any{"ips": []string{"127.0.0.1"}}))
	r := g.get(t, "/")
	wantStatus(t, r, http.StatusOK)
	if !slices.Contains(g.rec.All(), "ip-allowlist-flex=allowed") {
		t.Fatalf("decisions %v", g.rec.All())
	}

	deny := newGateway(t, policy.Env{}, up, mkPolicy("ip-allowlist-flex", map[string]any{"ips": []string{"10.0.0.0/8", "192.168"}}))
	r = deny.get(t, "/")
	wantStatus(t, r, http.StatusForbidden)
	wantErrorBody(t, r, "ip-allowlist-flex")
	if !slices.Contains(deny.rec.All(), "ip-allowlist-flex=denied") {
		t.Fatalf("decisions %v", deny.rec.All())
	}
}

// TestIPListFlexDefaultExpression: without trustedProxies the policy
// means what Flex documents: the first address of X-Forwarded-For is the
// client (the peer when the header is absent), and
// ipExpression "#[attributes.remoteAddress]" ignores the header.
func TestIPListFlexDefaultExpression(t *testing.T) {
	up := newUpstream(t)
	g := newGateway(t, policy.Env{}, up, mkPolicy("ip-allowlist-flex", map[string]any{"ips": []string{"10.0.0.0/8"}}))
	wantStatus(t, g.get(t, "/", "X-Forwarded-For", "10.1.2.3, 198.51.100.7"), http.StatusOK)
	wantStatus(t, g.get(t, "/"), http.StatusForbidden) // peer 127.0.0.1
	wantStatus(t, g.get(t, "/", "X-Forwarded-For", "198.51.100.7, 10.1.2.3"), http.StatusForbidden)

	peerOnly := newGateway(t, policy.Env{}, up, mkPolicy("ip-allowlist-flex", map[string]any{"ips": []string{"10.0.0.0/8"}, "ipExpression": "#[attributes.remoteAddress]"}))
	wantStatus(t, peerOnly.get(t, "/", "X-Forwarded-For", "10.1.2.3"), http.StatusForbidden)

	b := newGateway(t, policy.Env{}, up, mkPolicy("ip-blocklist-flex", map[string]any{"ips": []string{"203.0.113.0/24"}}))
	wantStatus(t, b.get(t, "/", "X-Forwarded-For", "203.0.113.5"), http.StatusForbidden)
	wantStatus(t, b.get(t, "/", "X-Forwarded-For", "8.8.8.8"), http.StatusOK)
}

// TestIPListWarnsWhenSpoofable: the Flex default reads a header any client
// writes; Warnings says so and names both fixes. trustedProxies or the
// peer address silence it.
func TestIPListWarnsWhenSpoofable(t *testing.T) {
	for _, tc := range []struct {
		cfg  map[string]any
		warn bool
	}{
		{map[string]any{"ips": []string{"10.0.0.0/8"}}, true},
		{map[string]any{"ips": []string{"10.0.0.0/8"}, "ipExpression": "#[attributes.headers['x-real-ip']]"}, true},
		{map[string]any{"ips": []string{"10.0.0.0/8"}, "trustedProxies": []string{"10.0.0.1"}}, false},
		{map[string]any{"ips": []string{"10.0.0.0/8"}, "ipExpression": "#[attributes.remoteAddress]"}, false},
	} {
		p := mkPolicy("ip-blocklist-flex", tc.cfg)
		snap := &ir.Snapshot{Listeners: []*ir.Listener{{APIs: []*ir.API{{Name: "a", Namespace: "default", Policies: []*ir.Policy{p}}}}}}
		ws := policy.Warnings(snap)
		if got := len(ws) > 0; got != tc.warn {
			t.Errorf("%v: warnings %q, want warning=%v", tc.cfg, ws, tc.warn)
			continue
		}
		if tc.warn && (!strings.Contains(ws[0], "trustedProxies") || !strings.Contains(ws[0], "remoteAddress")) {
			t.Errorf("warning does not give the fix: %s", ws[0])
		}
	}
}

func TestIPListTrustedProxyXFF(t *testing.T) {
	up := newUpstream(t)
	cfg := map[string]any{"ips": []string{"203.0.113.0/24"}, "trustedProxies": []string{"127.0.0.1", "10.0.0.0/8"}}
	g := newGateway(t, policy.Env{}, up, mkPolicy("ip-allowlist-flex", cfg))
	// Peer 127.0.0.1 is trusted; the right-most untrusted hop is the client.
	wantStatus(t, g.get(t, "/", "X-Forwarded-For", "203.0.113.9, 10.0.0.5"), http.StatusOK)
	// A forged left-most entry does not help an untrusted client.
	wantStatus(t, g.get(t, "/", "X-Forwarded-For", "203.0.113.9, 198.51.100.7"), http.StatusForbidden)
	// No header: the (trusted) peer itself is not allowed.
	wantStatus(t, g.get(t, "/"), http.StatusForbidden)

	bl := newGateway(t, policy.Env{}, up, mkPolicy("ip-blocklist-flex", map[string]any{"ips": []string{"198.51.100.7"}, "trustedProxies": []string{"127.0.0.1"}}))
	wantStatus(t, bl.get(t, "/", "X-Forwarded-For", "198.51.100.7"), http.StatusForbidden)
	wantStatus(t, bl.get(t, "/", "X-Forwarded-For", "198.51.100.8"), http.StatusOK)
}

func TestIPListValidation(t *testing.T) {
	for _, tc := range []struct{ cfg, field string }{
		{`{}`, "config.ips"},
		{`{"ips":["300.1.1.1"]}`, "config.ips[0]"},
		{`{"ips":["10.0.0.0/8"],"trustedProxies":["nope"]}`, "config.trustedProxies[0]"},
		{`{"ips":"10.0.0.1"}`, "config.ips"},
	} {
		err := policy.Check(mkPolicy("ip-allowlist-flex", tc.cfg))
		if err == nil || !errors.Is(err, policy.ErrInvalidConfig) || !contains(err.Error(), tc.field) {
			t.Errorf("%s: error %v, want one naming %s", tc.cfg, err, tc.field)
		}
	}
}
