package policy_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/policy"
	"github.com/flexgw/flexgw/sharedstore/redistest"
)

func basic(user, pass string) []string {
	return []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}
}

func TestBasicAuth(t *testing.T) {
	up := policytest.NewUpstream(t)
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("http-basic-authentication-flex", map[string]any{"username": "chris", "password": "admin"}))
	policytest.WantStatus(t, g.Get(t, "/", basic("chris", "admin")...), http.StatusOK)
	for name, hdr := range map[string][]string{
		"wrong password": basic("chris", "admin2"),
		"wrong user":     basic("chri", "admin"),
		"prefix pass":    basic("chris", "adm"),
		"no header":      nil,
		"bearer":         {"Authorization", "Bearer x"},
		"not base64":     {"Authorization", "Basic !!!"},
		"no colon":       {"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("chrisadmin"))},
	} {
		r := g.Get(t, "/", hdr...)
		policytest.WantStatus(t, r, http.StatusUnauthorized)
		policytest.WantErrorBody(t, r, "http-basic-authentication-flex")
		if r.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate challenge", name)
		}
	}
	// A denial names the request: its x-request-id in the body and header.
	r := g.Get(t, "/", "X-Request-Id", "rid-basic-1")
	policytest.WantStatus(t, r, http.StatusUnauthorized)
	var b struct {
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal([]byte(r.Body), &b); err != nil || b.RequestID != "rid-basic-1" || r.Header.Get("X-Request-Id") != "rid-basic-1" {
		t.Errorf("denial without the request id: body %q, header %q (%v)", r.Body, r.Header.Get("X-Request-Id"), err)
	}
	if up.Hits() != 1 {
		t.Fatalf("upstream hits %d", up.Hits())
	}
	if err := policy.Check(policytest.Policy("http-basic-authentication-flex", `{"username":"a"}`)); err == nil || !contains(err.Error(), "config.password") {
		t.Fatalf("want config.password error, got %v", err)
	}
}

func TestClientIDEnforcementFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "clients")
	if err := os.WriteFile(file, []byte("# id:secret\napp-1:s3cret\nopen-app\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	up := policytest.NewUpstream(t)
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("client-id-enforcement", map[string]any{"credentialsFile": file}))
	policytest.WantStatus(t, g.Get(t, "/", basic("app-1", "s3cret")...), http.StatusOK)
	policytest.WantStatus(t, g.Get(t, "/", basic("open-app", "")...), http.StatusOK)
	policytest.WantStatus(t, g.Get(t, "/", basic("app-1", "wrong")...), http.StatusUnauthorized)
	policytest.WantStatus(t, g.Get(t, "/", basic("app-2", "s3cret")...), http.StatusUnauthorized)
	policytest.WantStatus(t, g.Get(t, "/"), http.StatusUnauthorized)

	hdr := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("client-id-enforcement", map[string]any{
		"credentialsOriginHasHttpBasicAuthenticationHeader": "customExpression",
		"clientIdExpression":     "#[attributes.headers['client_id']]",
		"clientSecretExpression": "#[attributes.headers['client_secret']]",
		"credentials":            []map[string]string{{"clientId": "app-1", "clientSecret": "s3cret"}},
	}))
	policytest.WantStatus(t, hdr.Get(t, "/", "client_id", "app-1", "client_secret", "s3cret"), http.StatusOK)
	policytest.WantStatus(t, hdr.Get(t, "/", "client_id", "app-1", "client_secret", "nope"), http.StatusUnauthorized)

	if err := policy.Check(policytest.Policy("client-id-enforcement", `{}`)); err == nil || !contains(err.Error(), "config.credentialsFile") {
		t.Fatalf("want credentialsFile error, got %v", err)
	}
	if err := policy.Check(policytest.Policy("client-id-enforcement", `{"credentialsFile":"/nonexistent/x"}`)); err == nil || !contains(err.Error(), "config.credentialsFile") {
		t.Fatalf("want credentialsFile error, got %v", err)
	}
}

func TestClientIDEnforcementRedis(t *testing.T) {
	srv := redistest.Start(t)
	store := newRedisStore(t, srv.Addr)
	if err := store.Set(context.Background(), "flexgw:client:app-9", "pw"); err != nil {
		t.Fatal(err)
	}
	up := policytest.NewUpstream(t)
	g := policytest.NewGateway(t, policy.Env{Shared: store}, up, policytest.Policy("client-id-enforcement", map[string]any{"credentialsStore": "redis"}))
	policytest.WantStatus(t, g.Get(t, "/", basic("app-9", "pw")...), http.StatusOK)
	policytest.WantStatus(t, g.Get(t, "/", basic("app-9", "bad")...), http.StatusUnauthorized)
	policytest.WantStatus(t, g.Get(t, "/", basic("app-8", "pw")...), http.StatusUnauthorized)

	srv.Stop()
	r := g.Get(t, "/", basic("app-9", "pw")...)
	policytest.WantStatus(t, r, http.StatusServiceUnavailable)
	policytest.WantErrorBody(t, r, "client-id-enforcement")
	srv.Restart()
	if err := store.Set(context.Background(), "flexgw:client:app-9", "pw"); err != nil {
		// The cooldown may still be running; the poll below retries.
		t.Log(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_ = store.Set(context.Background(), "flexgw:client:app-9", "pw")
		if g.Get(t, "/", basic("app-9", "pw")...).Status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("client id enforcement did not recover after Redis returned")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
