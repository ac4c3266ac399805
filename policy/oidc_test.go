package policy_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/policy"
)

// oidcProvider is a STAND-IN OpenID provider (no real one can run here),
// written to the published protocols: OpenID Connect Discovery 1.0
// (/.well-known/openid-configuration), a JWKS (RFC 7517) and an RFC 7662
// introspection endpoint that authenticates its client with
// client_secret_post (RFC 6749 §2.3.1). Tokens it knows are in tokens;
// JWT access tokens are signed with the RSA key published in the JWKS.
type oidcProvider struct {
	*httptest.Server
	introspection bool
	issuer        string // overrides the issuer in the document when set
	mu            sync.Mutex
	tokens        map[string]map[string]any
	calls         atomic.Int32
	down          atomic.Bool
}

func newOIDCProvider(t testing.TB, introspection bool) *oidcProvider {
	k, _ := rsaKeys(t)
	p := &oidcProvider{introspection: introspection, tokens: map[string]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		iss := p.URL
		if p.issuer != "" {
			iss = p.issuer
		}
		doc := map[string]any{"issuer": iss, "jwks_uri": p.URL + "/jwks", "response_types_supported": []string{"code"},
			"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"}}
		if p.introspection {
			doc["introspection_endpoint"] = p.URL + "/introspect"
			doc["introspection_endpoint_auth_methods_supported"] = []string{"client_secret_post"}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{rsaJWK("k1", &k.PublicKey)}})
	})
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		p.calls.Add(1)
		if p.down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		if r.ParseForm() != nil || r.PostForm.Get("client_id") != "gateway" || r.PostForm.Get("client_secret") != "gw-secret" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		p.mu.Lock()
		info, ok := p.tokens[r.PostForm.Get("token")]
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			_, _ = w.Write([]byte(`{"active":false}`))
			return
		}
		_ = json.NewEncoder(w).Encode(info)
	})
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	return p
}

func (p *oidcProvider) issue(tok string, info map[string]any) {
	p.mu.Lock()
	p.tokens[tok] = info
	p.mu.Unlock()
}

func TestOIDCIntrospection(t *testing.T) {
	op := newOIDCProvider(t, true)
	exp := time.Now().Add(time.Hour).Unix()
	op.issue("good", map[string]any{"active": true, "scope": "read write", "client_id": "app-1", "exp": exp, "uid": "john.doe",
		"mail": "john.doe@example.com", "token_type": "Bearer", "alias": []string{"J"}, "address": map[string]any{"city": "london"}})
	op.issue("reader", map[string]any{"active": true, "scope": "read", "client_id": "app-2", "exp": exp})
	op.issue("noexp", map[string]any{"active": true, "scope": "read write", "client_id": "app-3"})
	up := policytest.NewUpstream(t)
	// Flex's example plus the provider flexgw needs.
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("openidconnect-access-token-enforcement-flex", map[string]any{
		"authenticationTimeout": 10000, "scopes": "read write", "secureTrustStore": false, "scopeValidationCriteria": "AND",
		"exposeHeaders": true, "skipClientIdValidation": true,
		"issuer": op.URL, "clientId": "gateway", "clientSecret": "gw-secret",
	}))
	policytest.WantStatus(t, g.Get(t, "/x", append(bearer("good"), "X-AGW-role", "admin")...), 200)
	h := up.LastHeader()
	if h.Get("X-Agw-Uid") != "john.doe" || h.Get("X-Agw-Mail") != "john.doe@example.com" || h.Get("X-Agw-Token_type") != "Bearer" {
		t.Errorf("exposed headers %v", h)
	}
	if h.Get("X-Agw-Scope") != "" || h.Get("X-Agw-Exp") != "" || h.Get("X-Agw-Alias") != "" || h.Get("X-Agw-Address") != "" {
		t.Errorf("scope, exp, arrays or objects exposed: %v", h)
	}
	if h.Get("X-Agw-Role") != "" {
		t.Errorf("a client's own X-AGW- header reached the upstream: %v", h)
	}
	policytest.WantStatus(t, g.Get(t, "/x", bearer("good")...), 200)
	if n := op.calls.Load(); n != 1 {
		t.Errorf("introspection calls %d for one token with exp, want 1 (cached)", n)
	}
	// No exp: never cached (Flex).
	policytest.WantStatus(t, g.Get(t, "/x", bearer("noexp")...), 200)
	policytest.WantStatus(t, g.Get(t, "/x", bearer("noexp")...), 200)
	if n := op.calls.Load(); n != 3 {
		t.Errorf("introspection calls %d, want a call per request for a token without exp", n)
	}
	r := g.Get(t, "/x", bearer("reader")...)
	policytest.WantStatus(t, r, 403)
	if !strings.Contains(r.Header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Errorf("403 challenge %q", r.Header.Get("WWW-Authenticate"))
	}
	r = g.Get(t, "/x", bearer("unknown")...)
	policytest.WantStatus(t, r, 401)
	policytest.WantErrorBody(t, r, "openidconnect-access-token-enforcement-flex")
	policytest.WantStatus(t, g.Get(t, "/x"), 401)
	// A bad answer from the provider: 500 (Flex).
	op.down.Store(true)
	policytest.WantStatus(t, g.Get(t, "/x", bearer("reader-2")...), 500)
	op.down.Store(false)
	// Cached tokens keep working without the provider.
	op.Close()
	policytest.WantStatus(t, g.Get(t, "/x", bearer("good")...), 200)
	if up.Hits() != 5 {
		t.Errorf("upstream hits %d, want 5", up.Hits())
	}

	// OR: one scope is enough; the wrong client secret is a bad answer.
	op2 := newOIDCProvider(t, true)
	op2.issue("reader", map[string]any{"active": true, "scope": "read", "client_id": "app-2", "exp": exp})
	or := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("openidconnect-access-token-enforcement-flex", map[string]any{
		"scopes": "read write", "scopeValidationCriteria": "OR", "issuer": op2.URL, "clientId": "gateway", "clientSecret": "gw-secret"}))
	policytest.WantStatus(t, or.Get(t, "/x", bearer("reader")...), 200)
	wrong := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("openidconnect-access-token-enforcement-flex", map[string]any{
		"issuer": op2.URL, "clientId": "gateway", "clientSecret": "guess"}))
	policytest.WantStatus(t, wrong.Get(t, "/x", bearer("reader")...), 500)
}

func TestOIDCJWKS(t *testing.T) {
	op := newOIDCProvider(t, false)
	k1, k2 := rsaKeys(t)
	now := time.Now().Unix()
	claims := map[string]any{"iss": op.URL, "sub": "jane", "client_id": "app-1", "scope": "read", "exp": now + 300, "iat": now}
	up := policytest.NewUpstream(t)
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("openidconnect-access-token-enforcement-flex", map[string]any{
		"scopes": "read", "issuer": op.URL, "maxCacheSize": 0}))
	policytest.WantStatus(t, g.Get(t, "/", bearer(signJWT(t, "RS256", "k1", claims, k1))...), 200)
	for name, tok := range map[string]string{
		"other key":       signJWT(t, "RS256", "k1", claims, k2),
		"other issuer":    signJWT(t, "RS256", "k1", with(claims, "iss", "https://evil.example"), k1),
		"expired":         signJWT(t, "RS256", "k1", with(claims, "exp", now-10), k1),
		"no exp":          signJWT(t, "RS256", "k1", with(claims, "exp", nil), k1),
		"not yet":         signJWT(t, "RS256", "k1", with(claims, "nbf", now+600), k1),
		"alg none":        signJWT(t, "none", "k1", claims, nil),
		"HS256 with n":    signJWT(t, "HS256", "k1", claims, []byte("secret")),
		"opaque":          "opaque-token",
		"unknown kid":     signJWT(t, "RS256", "k9", claims, k1),
		"missing a scope": signJWT(t, "RS256", "k1", with(claims, "scope", "write"), k1),
	} {
		r := g.Get(t, "/", bearer(tok)...)
		want := 401
		if name == "missing a scope" {
			want = 403
		}
		if r.Status != want {
			t.Errorf("%s: status %d, want %d", name, r.Status, want)
		}
	}
	if up.Hits() != 1 {
		t.Errorf("upstream hits %d, want 1", up.Hits())
	}
}

func TestOIDCProviderProblems(t *testing.T) {
	up := policytest.NewUpstream(t)
	// Flex's configuration as documented: no provider. Validate warns,
	// requests get 401.
	p := policytest.Policy("openidconnect-access-token-enforcement-flex", `{"authenticationTimeout":10000,"scopes":"read write","secureTrustStore":false,"scopeValidationCriteria":"OR","exposeHeaders":true,"skipClientIdValidation":false}`)
	if err := policy.Check(p); err != nil {
		t.Fatalf("Flex's example rejected: %v", err)
	}
	d, _ := policy.Lookup(p.Name)
	warns := d.(policy.Warner).Warnings(p)
	if len(warns) != 2 || !strings.Contains(warns[0], "config.issuer") || !strings.Contains(warns[1], "skipClientIdValidation") {
		t.Errorf("warnings %q", warns)
	}
	g := policytest.NewGateway(t, policy.Env{}, up, p)
	policytest.WantStatus(t, g.Get(t, "/", bearer("x")...), 401)

	// A discovery document naming another issuer is not trusted.
	op := newOIDCProvider(t, true)
	op.issuer = "https://someone-else.example"
	op.issue("good", map[string]any{"active": true, "client_id": "a", "exp": time.Now().Add(time.Hour).Unix()})
	g = policytest.NewGateway(t, policy.Env{}, up, policytest.Policy(p.Name, map[string]any{"issuer": op.URL, "clientId": "gateway", "clientSecret": "gw-secret"}))
	policytest.WantStatus(t, g.Get(t, "/", bearer("good")...), 401)
	if up.Hits() != 0 || op.calls.Load() != 0 {
		t.Errorf("hits %d, introspection calls %d: want none", up.Hits(), op.calls.Load())
	}
}

func TestOIDCConfigErrors(t *testing.T) {
	d, _ := policy.Lookup("openidconnect-access-token-enforcement-flex")
	for cfg, want := range map[string]string{
		`{"authenticationTimeout":0}`:           "config.authenticationTimeout",
		`{"scopeValidationCriteria":"SOME"}`:    "config.scopeValidationCriteria",
		`{"maxFederationExpirationTime":-2}`:    "config.maxFederationExpirationTime",
		`{"maxCacheSize":-1}`:                   "config.maxCacheSize",
		`{"issuer":"ftp://x"}`:                  "config.issuer",
		`{"issuer":"https://x?a=b"}`:            "config.issuer",
		`{"issuer":"https://x","clientId":"a"}`: "config.clientSecret",
		`{"exposeHeaders":"sometimes"}`:         "config.exposeHeaders",
	} {
		err := d.Validate([]byte(cfg))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", cfg, err, want)
		}
	}
}
