package policy_test

import (
	"errors"
	"net/http"
	"slices"
	"testing"

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

func TestIPAllowlistIgnoresSpoofedXFFFromUntrustedPeer(t *testing.T) {
	up := newUpstream(t)
	// The client claims to be 10.1.2.3; the peer (127.0.0.1) is no trusted proxy.
	g := newGateway(t, policy.Env{}, up, mkPolicy("ip-allowlist-flex", map[string]any{"ips": []string{"10.0.0.0/8"}}))
	wantStatus(t, g.get(t, "/", "X-Forwarded-For", "10.1.2.3"), http.StatusForbidden)
	if up.Hits() != 0 {
		t.Fatal("denied request reached the upstream")
	}

	// Blocklist: a blocked client cannot escape by claiming another address.
	b := newGateway(t, policy.Env{}, up, mkPolicy("ip-blocklist-flex", map[string]any{"ips": []string{"127.0.0.0/8"}}))
	wantStatus(t, b.get(t, "/", "X-Forwarded-For", "8.8.8.8"), http.StatusForbidden)
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
