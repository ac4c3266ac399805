package policy_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/policy"
)

// introspectionServer is a stand-in RFC 7662 introspection endpoint: it
// requires the configured client authorization, takes the form-encoded
// token, and answers {"active":false} for any token it does not know.
func introspectionServer(t *testing.T, auth string, tokens map[string]map[string]any) (*httptest.Server, *atomic.Int32) {
	var calls atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("Authorization") != auth {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodPost || r.ParseForm() != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		info, ok := tokens[r.PostForm.Get("token")]
		if !ok {
			_, _ = w.Write([]byte(`{"active":false}`))
			return
		}
		_ = json.NewEncoder(w).Encode(info)
	}))
	t.Cleanup(s.Close)
	return s, &calls
}

func TestOAuth2TokenIntrospection(t *testing.T) {
	exp := time.Now().Add(time.Hour).Unix()
	as, calls := introspectionServer(t, "Basic Z3c6cw==", map[string]map[string]any{
		"good":    {"active": true, "scope": "profile email shopping", "client_id": "app-1", "username": "jane", "exp": exp},
		"narrow":  {"active": true, "scope": "profile", "client_id": "app-2"},
		"expired": {"active": true, "scope": "profile email shopping", "exp": time.Now().Add(-time.Minute).Unix()},
	})
	up := policytest.NewUpstream(t)
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("oauth2-token-introspection-flex", map[string]any{
		"introspectionURL": as.URL, "authorizationValue": "Basic Z3c6cw==", "skipClientIdValidation": true,
		"consumerBy": "client_id", "scopes": "profile email", "scopeValidationCriteria": "AND",
	}))
	policytest.WantStatus(t, g.Get(t, "/x", "Authorization", "Bearer good"), 200)
	policytest.WantStatus(t, g.Get(t, "/x", "Authorization", "Bearer good"), 200)
	if calls.Load() != 1 {
		t.Fatalf("introspection calls %d for one token, want 1 (cached)", calls.Load())
	}
	r := g.Get(t, "/x")
	policytest.WantStatus(t, r, 401)
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no Bearer challenge: %v", r.Header)
	}
	r = g.Get(t, "/x", "Authorization", "Bearer unknown")
	policytest.WantStatus(t, r, 401)
	policytest.WantErrorBody(t, r, "oauth2-token-introspection-flex")
	policytest.WantStatus(t, g.Get(t, "/x", "Authorization", "Bearer expired"), 401)
	r = g.Get(t, "/x", "Authorization", "Bearer narrow")
	policytest.WantStatus(t, r, 403)
	if !strings.Contains(r.Header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Fatalf("403 without insufficient_scope: %v", r.Header)
	}
	if up.Hits() != 2 {
		t.Fatalf("upstream hits %d, want the 2 valid requests", up.Hits())
	}

	// OR: one of the scopes is enough.
	or := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("oauth2-token-introspection-flex", map[string]any{
		"introspectionURL": as.URL, "authorizationValue": "Basic Z3c6cw==", "consumerBy": "client_id", "scopes": "profile admin", "scopeValidationCriteria": "OR"}))
	policytest.WantStatus(t, or.Get(t, "/x", "Authorization", "Bearer narrow"), 200)

	// Wrong endpoint credentials: fail closed with 503, nothing forwarded.
	bad := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("oauth2-token-introspection-flex", map[string]any{
		"introspectionURL": as.URL, "authorizationValue": "Basic d3Jvbmc=", "consumerBy": "client_id"}))
	policytest.WantStatus(t, bad.Get(t, "/x", "Authorization", "Bearer good"), 503)
	if up.Hits() != 3 {
		t.Fatal("request forwarded although the token could not be checked")
	}
}

func TestOAuth2TokenIntrospectionValidation(t *testing.T) {
	for _, c := range []struct{ cfg, want string }{
		{`{"authorizationValue":"Basic x"}`, "config.introspectionURL: required"},
		{`{"introspectionURL":"file:///x","authorizationValue":"Basic x"}`, "config.introspectionURL: must be an http or https URL"},
		{`{"introspectionURL":"https://as/introspect"}`, "config.authorizationValue: required"},
		{`{"introspectionURL":"https://as/introspect","authorizationValue":"x","consumerBy":"email"}`, "config.consumerBy: must be client_id or username"},
		{`{"introspectionURL":"https://as/introspect","authorizationValue":"x","scopeValidationCriteria":"XOR"}`, "config.scopeValidationCriteria: must be AND or OR"},
		{`{"introspectionURL":"https://as/introspect","authorizationValue":"x","authenticationTimeout":0}`, "config.authenticationTimeout: must be > 0"},
	} {
		err := policy.Check(policytest.Policy("oauth2-token-introspection-flex", c.cfg))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.cfg, err, c.want)
		}
	}
}
