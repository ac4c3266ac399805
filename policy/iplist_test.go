package policy_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

func TestIPAllowlist(t *testing.T) {
	up := policytest.NewUpstream(t)
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("ip-allowlist-flex", map[string]any{"ips": []string{"127.0.0.1"}}))
	r := g.Get(t, "/")
	policytest.WantStatus(t, r, http.StatusOK)
	if !slices.Contains(g.Rec.All(), "ip-allowlist-flex=allowed") {
		t.Fatalf("decisions %v", g.Rec.All())
	}

	deny := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("ip-allowlist-flex", map[string]any{"ips": []string{"10.0.0.0/8", "192.168"}}))
	r = deny.Get(t, "/")
	policytest.WantStatus(t, r, http.StatusForbidden)
	policytest.WantErrorBody(t, r, "ip-allowlist-flex")
	if !slices.Contains(deny.Rec.All(), "ip-allowlist-flex=denied") {
		t.Fatalf("decisions %v", deny.Rec.All())
	}
}

// TestIPListFlexDefaultExpression: without trustedProxies the policy
// means what Flex documents: the first address of X-Forwarded-For is the
// client (the peer when the header is absent), and
// ipExpression "#[attributes.remoteAddress]" ignores the header.
func TestIPListFlexDefaultExpression(t *testing.T) {
	up := policytest.NewUpstream(t)
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("ip-allowlist-flex", map[string]any{"ips": []string{"10.0.0.0/8"}}))
	policytest.WantStatus(t, g.Get(t, "/", "X-Forwarded-For", "10.1.2.3, 198.51.100.7"), http.StatusOK)
	policytest.WantStatus(t, g.Get(t, "/"), http.StatusForbidden) // peer 127.0.0.1
	policytest.WantStatus(t, g.Get(t, "/", "X-Forwarded-For", "198.51.100.7, 10.1.2.3"), http.StatusForbidden)

	peerOnly := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("ip-allowlist-flex", map[string]any{"ips": []string{"10.0.0.0/8"}, "ipExpression": "#[attributes.remoteAddress]"}))
	policytest.WantStatus(t, peerOnly.Get(t, "/", "X-Forwarded-For", "10.1.2.3"), http.StatusForbidden)

	b := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("ip-blocklist-flex", map[string]any{"ips": []string{"203.0.113.0/24"}}))
	policytest.WantStatus(t, b.Get(t, "/", "X-Forwarded-For", "203.0.113.5"), http.StatusForbidden)
	policytest.WantStatus(t, b.Get(t, "/", "X-Forwarded-For", "8.8.8.8"), http.StatusOK)
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
		p := policytest.Policy("ip-blocklist-flex", tc.cfg)
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
	up := policytest.NewUpstream(t)
	cfg := map[string]any{"ips": []string{"203.0.113.0/24"}, "trustedProxies": []string{"127.0.0.1", "10.0.0.0/8"}}
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("ip-allowlist-flex", cfg))
	// Peer 127.0.0.1 is trusted; the right-most untrusted hop is the client.
	policytest.WantStatus(t, g.Get(t, "/", "X-Forwarded-For", "203.0.113.9, 10.0.0.5"), http.StatusOK)
	// A forged left-most entry does not help an untrusted client.
	policytest.WantStatus(t, g.Get(t, "/", "X-Forwarded-For", "203.0.113.9, 198.51.100.7"), http.StatusForbidden)
	// No header: the (trusted) peer itself is not allowed.
	policytest.WantStatus(t, g.Get(t, "/"), http.StatusForbidden)

	bl := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("ip-blocklist-flex", map[string]any{"ips": []string{"198.51.100.7"}, "trustedProxies": []string{"127.0.0.1"}}))
	policytest.WantStatus(t, bl.Get(t, "/", "X-Forwarded-For", "198.51.100.7"), http.StatusForbidden)
	policytest.WantStatus(t, bl.Get(t, "/", "X-Forwarded-For", "198.51.100.8"), http.StatusOK)
}

func TestIPListValidation(t *testing.T) {
	for _, tc := range []struct{ cfg, field string }{
		{`{}`, "config.ips"},
		{`{"ips":["300.1.1.1"]}`, "config.ips[0]"},
		{`{"ips":["10.0.0.0/8"],"trustedProxies":["nope"]}`, "config.trustedProxies[0]"},
		{`{"ips":"10.0.0.1"}`, "config.ips"},
	} {
		err := policy.Check(policytest.Policy("ip-allowlist-flex", tc.cfg))
		if err == nil || !errors.Is(err, policy.ErrInvalidConfig) || !contains(err.Error(), tc.field) {
			t.Errorf("%s: error %v, want one naming %s", tc.cfg, err, tc.field)
		}
	}
}
