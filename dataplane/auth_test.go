package dataplane

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/ir"
)

// TestSecurityAuthenticationStaysInItsRequest: the data plane keeps a
// request's authentication in its pooled per-request state instead of a
// context of its own. A request that authenticated must hand it to later
// policies (header injection from authentication.principal and the
// claims), and the next request on the same connection, to an API without
// authentication, must not see it: the attack is a client that
// authenticates once and then rides on that identity unauthenticated.
// Runs over HTTP/1.1 (the h1 server) and h2c (net/http), whose requests
// reach the state differently.
func TestSecurityAuthenticationStaysInItsRequest(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	up := echoUpstream(t, "up")
	pol := func(name string, order int, cfg any) *ir.Policy {
		raw, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return &ir.Policy{Name: name, Binding: "default/" + name, Order: order, Config: raw}
	}
	inject := pol("header-injection-flex", 2, map[string]any{"inboundHeaders": []map[string]string{
		{"key": "x-principal", "value": "#[authentication.principal]"},
		{"key": "x-role", "value": "#[vars.claimSet.role]"},
	}})
	secure := api("secure", "/s", catchAll("r", "up"))
	secure.Policies = []*ir.Policy{pol("jwt-validation-flex", 1, map[string]any{"signingMethod": "hmac", "textKey": secret}), inject}
	open := api("open", "/o", catchAll("r", "up"))
	open.Policies = []*ir.Policy{inject}
	g := startGateway(t, snapshot(1, []*ir.Service{svc("up", endpointOf(t, up))}, secure, open))
	tok := testutil.HS256Token(t, secret, map[string]any{"sub": "alice", "role": "admin", "exp": time.Now().Add(time.Hour).Unix()})

	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	for _, c := range []struct {
		name  string
		tr    *http.Transport
		proto int
	}{
		{"HTTP/1.1", &http.Transport{MaxConnsPerHost: 1}, 1},
		{"h2c", h2c, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer c.tr.CloseIdleConnections()
			client := &http.Client{Transport: c.tr}
			send := func(path, auth string) echo {
				t.Helper()
				req, _ := http.NewRequest(http.MethodGet, g.url(path), nil)
				if auth != "" {
					req.Header.Set("Authorization", "Bearer "+auth)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var e echo
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
					t.Fatalf("%s: status %d, body not the echo: %v", path, resp.StatusCode, err)
				}
				if resp.ProtoMajor != c.proto {
					t.Fatalf("%s: served over %s", path, resp.Proto)
				}
				return e
			}
			for i := 0; i < 3; i++ {
				e := send("/s/x", tok)
				if p, r := e.Header.Get("X-Principal"), e.Header.Get("X-Role"); p != "alice" || r != "admin" {
					t.Fatalf("authenticated request: upstream saw principal %q role %q, want alice admin", p, r)
				}
				e = send("/o/x", "")
				if p, r := e.Header.Get("X-Principal"), e.Header.Get("X-Role"); p == "alice" || r == "admin" {
					t.Fatalf("unauthenticated request after an authenticated one: upstream saw principal %q role %q", p, r)
				}
			}
		})
	}
}
