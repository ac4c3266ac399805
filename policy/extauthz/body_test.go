package extauthz_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy/extauthz"
)

func startWith(t *testing.T, ps ...*ir.Policy) authv3.AuthorizationClient {
	t.Helper()
	s := extauthz.New(nil, nil)
	s.Update(apiSnapshot(ps...))
	return authv3.NewAuthorizationClient(serveGRPC(t, s))
}

// Body-inspecting policies get the body Envoy buffered (raw_body).
func TestCheckInspectsTheBody(t *testing.T) {
	c := startWith(t,
		pol("json-threat-protection-flex", "default/json", map[string]any{"maxContainerDepth": 2}),
		pol("xml-threat-protection-flex", "default/xml", map[string]any{"maxChildCount": 1}))
	ctx := context.Background()
	req := func(binding, name, ctype, body string) *authv3.CheckRequest {
		r := check(binding, name, "127.0.0.1", map[string]string{"content-type": ctype})
		r.Attributes.Request.Http.Method = "POST"
		r.Attributes.Request.Http.RawBody = []byte(body)
		return r
	}
	r, err := c.Check(ctx, req("default/json", "json-threat-protection-flex", "application/json", `{"a":{"b":1}}`))
	if err != nil || r.GetOkResponse() == nil {
		t.Fatalf("valid JSON: %v %v", r, err)
	}
	r, _ = c.Check(ctx, req("default/json", "json-threat-protection-flex", "application/json", `{"a":{"b":{"c":1}}}`))
	if d := r.GetDeniedResponse(); d == nil || d.GetStatus().GetCode() != 400 || !strings.Contains(d.GetBody(), "maxContainerDepth") {
		t.Fatalf("deep JSON: %v", r)
	}
	r, _ = c.Check(ctx, req("default/xml", "xml-threat-protection-flex", "application/xml", `<a><b/><c/></a>`))
	if d := r.GetDeniedResponse(); d == nil || d.GetStatus().GetCode() != 400 || !strings.Contains(d.GetBody(), "maxChildCount") {
		t.Fatalf("XML children: %v", r)
	}
}

// credential-injection-oauth2-flex on Envoy: the agent fetches the token
// and the check answer sets Authorization on the upstream request.
func TestCheckInjectsOAuth2Token(t *testing.T) {
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, sec, ok := r.BasicAuth(); !ok || id != "c" || sec != "s" || r.FormValue("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "agent-token", "token_type": "Bearer", "expires_in": 60})
	}))
	defer as.Close()
	c := startWith(t, pol("credential-injection-oauth2-flex", "default/oauth", map[string]any{"oauthService": as.URL, "clientId": "c", "clientSecret": "s"}))
	r, err := c.Check(context.Background(), check("default/oauth", "credential-injection-oauth2-flex", "127.0.0.1", map[string]string{"authorization": "Bearer client"}))
	if err != nil {
		t.Fatal(err)
	}
	ok := r.GetOkResponse()
	if ok == nil || len(ok.Headers) != 1 || ok.Headers[0].GetHeader().GetKey() != "authorization" || ok.Headers[0].GetHeader().GetValue() != "Bearer agent-token" {
		t.Fatalf("check answer %v", r)
	}
}
