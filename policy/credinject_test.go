package policy_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/policy"
)

func TestCredentialInjectionBasic(t *testing.T) {
	up := policytest.NewUpstream(t)
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("credential-injection-basic-auth-flex", `{"username":"svc","password":"p@ss:word"}`))
	policytest.WantStatus(t, g.Get(t, "/x"), 200)
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:p@ss:word"))
	if got := up.LastHeader().Get("Authorization"); got != want {
		t.Fatalf("upstream Authorization %q, want %q", got, want)
	}
	// overwrite defaults to true: a client's own Authorization is replaced.
	g.Get(t, "/x", "Authorization", "Bearer client")
	if got := up.LastHeader().Get("Authorization"); got != want {
		t.Fatalf("client header not overwritten: %q", got)
	}

	keep := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("credential-injection-basic-auth-flex", `{"username":"svc","password":"pw","overwrite":false,"customHeader":"X-Upstream-Auth"}`))
	keep.Get(t, "/x", "X-Upstream-Auth", "mine")
	if got := up.LastHeader().Values("X-Upstream-Auth"); len(got) != 1 || got[0] != "mine" {
		t.Fatalf("overwrite=false replaced the client's header: %q", got)
	}
	if up.LastHeader().Get("Authorization") != "" {
		t.Fatal("customHeader set but Authorization injected")
	}
	keep.Get(t, "/x")
	if got := up.LastHeader().Get("X-Upstream-Auth"); got != "Basic "+base64.StdEncoding.EncodeToString([]byte("svc:pw")) {
		t.Fatalf("custom header %q", got)
	}
}

func TestCredentialInjectionAPIKey(t *testing.T) {
	up := policytest.NewUpstream(t)
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("credential-injection-api-key-flex", `{"authType":"apiKey","overwrite":true,"apiKey":"k-123"}`))
	g.Get(t, "/x", "Authorization", "spoofed")
	if got := up.LastHeader().Values("Authorization"); len(got) != 1 || got[0] != "k-123" {
		t.Fatalf("Authorization %q, want the key only", got)
	}
	cc := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("credential-injection-api-key-flex", `{"authType":"clientCredentials","clientId":"id1","clientSecret":"s1","customClientSecretHeader":"x-secret"}`))
	cc.Get(t, "/x", "client_id", "attacker")
	h := up.LastHeader()
	if h.Get("client_id") != "id1" || h.Get("x-secret") != "s1" || h.Get("client_secret") != "" {
		t.Fatalf("upstream headers %v", h)
	}
}

func TestCredentialInjectionValidation(t *testing.T) {
	for _, c := range []struct{ name, cfg, want string }{
		{"credential-injection-basic-auth-flex", `{"username":"a:b"}`, "config.username: must not contain ':'"},
		{"credential-injection-basic-auth-flex", `{"customHeader":"bad header"}`, "config.customHeader:"},
		{"credential-injection-basic-auth-flex", `{"overwrite":"yes"}`, "config.overwrite: must be true or false"},
		{"credential-injection-api-key-flex", `{"authType":"apiKey"}`, "config.apiKey: required when authType is apiKey"},
		{"credential-injection-api-key-flex", `{"authType":"apiKey","apiKey":"a\r\nX-Evil: 1"}`, "config.apiKey: contains characters"},
		{"credential-injection-api-key-flex", `{"authType":"clientCredentials","clientId":"a"}`, "config.clientSecret: required"},
		{"credential-injection-api-key-flex", `{"authType":"oauth","apiKey":"k"}`, "config.authType: must be apiKey or clientCredentials"},
		{"credential-injection-oauth2-flex", `{"clientId":"a","clientSecret":"b"}`, "config.oauthService: required"},
		{"credential-injection-oauth2-flex", `{"oauthService":"ftp://x/t","clientId":"a","clientSecret":"b"}`, "config.oauthService: must be an http or https URL"},
		{"credential-injection-oauth2-flex", `{"oauthService":"http://x/t","clientId":"a"}`, "config.clientSecret: required"},
		{"credential-injection-oauth2-flex", `{"oauthService":"http://x/t","clientId":"a","clientSecret":"b","scope":["a b"]}`, "config.scope[0]:"},
		{"credential-injection-oauth2-flex", `{"oauthService":"http://x/t","clientId":"a","clientSecret":"b","tokenFetchTimeout":0}`, "config.tokenFetchTimeout: must be > 0"},
		{"credential-injection-oauth2-flex", `{"oauthService":"http://x/t","clientId":"a","clientSecret":"b","grantType":"password"}`, "config.username: required for the password grant type"},
		{"credential-injection-oauth2-flex", `{"oauthService":"http://x/t","clientId":"a","clientSecret":"b","credentialLocation":"query"}`, "config.credentialLocation: must be header or body"},
	} {
		err := policy.Check(policytest.Policy(c.name, c.cfg))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: error %v, want %q", c.name, c.cfg, err, c.want)
		}
	}
}

// tokenServer is a stand-in OAuth 2.0 authorization server's token
// endpoint, written to RFC 6749: client authentication by HTTP Basic with
// form-encoded credentials (§2.3.1) or by body parameters, the
// client_credentials (§4.4) and password (§4.3) grants, the JSON success
// response (§5.1) and error response (§5.2).
type tokenServer struct {
	*httptest.Server
	clientID, secret string
	users            map[string]string
	expiresIn        int
	issued           atomic.Int32
	mu               sync.Mutex
	lastForm         url.Values
	lastBasic        bool
}

func newTokenServer(t *testing.T, id, secret string, expiresIn int) *tokenServer {
	ts := &tokenServer{clientID: id, secret: secret, expiresIn: expiresIn, users: map[string]string{}}
	ts.Server = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, e string) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
		}
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": e})
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		fail(http.StatusBadRequest, "invalid_request")
		return
	}
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "invalid_request")
		return
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		if r.PostForm.Get("client_secret") != "" {
			fail(http.StatusBadRequest, "invalid_request") // §2.3: one method only
			return
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	ts.mu.Lock()
	ts.lastForm, ts.lastBasic = r.PostForm, basic
	ts.mu.Unlock()
	if id != ts.clientID || secret != ts.secret {
		fail(http.StatusUnauthorized, "invalid_client")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "client_credentials":
	case "password":
		if pw, ok := ts.users[r.PostForm.Get("username")]; !ok || pw != r.PostForm.Get("password") {
			fail(http.StatusBadRequest, "invalid_grant")
			return
		}
	default:
		fail(http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	n := ts.issued.Add(1)
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("tok-%d", n), "token_type": "bearer", "expires_in": ts.expiresIn})
}

func (ts *tokenServer) form() (url.Values, bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.lastForm, ts.lastBasic
}

func TestCredentialInjectionOAuth2ClientCredentials(t *testing.T) {
	as := newTokenServer(t, "gw client", "s&cret", 3600)
	up := policytest.NewUpstream(t)
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("credential-injection-oauth2-flex", map[string]any{
		"oauthService": as.URL + "/token", "clientId": "gw client", "clientSecret": "s&cret", "scope": []string{"read", "write"},
	}))
	// Concurrent first requests share one token fetch.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			policytest.WantStatus(t, g.Get(t, "/x", "Authorization", "Bearer client-token"), 200)
		}()
	}
	wg.Wait()
	if n := as.issued.Load(); n != 1 {
		t.Fatalf("token endpoint issued %d tokens for 8 requests, want 1", n)
	}
	if got := up.LastHeader().Get("Authorization"); got != "Bearer tok-1" {
		t.Fatalf("upstream Authorization %q", got)
	}
	form, basic := as.form()
	if !basic || form.Get("grant_type") != "client_credentials" || form.Get("scope") != "read write" {
		t.Fatalf("token request form %v (basic %v)", form, basic)
	}
}

func TestCredentialInjectionOAuth2RefreshAndFailure(t *testing.T) {
	as := newTokenServer(t, "c", "s", 1) // tokens live one second
	as.users["alice"] = "pw"
	up := policytest.NewUpstream(t)
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("credential-injection-oauth2-flex", map[string]any{
		"oauthService": as.URL, "clientId": "c", "clientSecret": "s", "grantType": "password", "username": "alice", "password": "pw", "credentialLocation": "body",
	}))
	policytest.WantStatus(t, g.Get(t, "/x"), 200)
	form, basic := as.form()
	if basic || form.Get("client_id") != "c" || form.Get("username") != "alice" {
		t.Fatalf("token request form %v (basic %v)", form, basic)
	}
	// An expired token is replaced: wait until a request carries a new one.
	deadline := time.Now().Add(20 * time.Second)
	for as.issued.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("token never refreshed")
		}
		policytest.WantStatus(t, g.Get(t, "/x"), 200)
		time.Sleep(50 * time.Millisecond)
	}

	// Wrong secret: the request is not sent without a credential.
	bad := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("credential-injection-oauth2-flex", map[string]any{"oauthService": as.URL, "clientId": "c", "clientSecret": "wrong"}))
	hits := up.Hits()
	r := bad.Get(t, "/x")
	policytest.WantStatus(t, r, http.StatusServiceUnavailable)
	policytest.WantErrorBody(t, r, "credential-injection-oauth2-flex")
	if strings.Contains(r.Body, "invalid_client") {
		t.Fatalf("token endpoint error leaked to the client: %s", r.Body)
	}
	if up.Hits() != hits {
		t.Fatal("request reached the upstream without a credential")
	}
	// allowRequestWithoutCredential sends it anyway.
	open := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("credential-injection-oauth2-flex", map[string]any{"oauthService": as.URL, "clientId": "c", "clientSecret": "wrong", "allowRequestWithoutCredential": true}))
	policytest.WantStatus(t, open.Get(t, "/x"), 200)
	if up.LastHeader().Get("Authorization") != "" {
		t.Fatal("a credential was injected although none could be fetched")
	}
}

// A hostile token endpoint cannot make the gateway inject header-splitting
// values or non-Bearer tokens.
func TestCredentialInjectionOAuth2HostileEndpoint(t *testing.T) {
	for _, body := range []string{
		`{"access_token":"a\r\nX-Evil: 1","token_type":"bearer"}`,
		`{"access_token":"abc","token_type":"mac"}`,
		`{"access_token":"","token_type":"bearer"}`,
		`{"access_token":"abc","token_type":"bearer","expires_in":-5}`,
		`not json`,
	} {
		as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body))
		}))
		up := policytest.NewUpstream(t)
		g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("credential-injection-oauth2-flex", map[string]any{"oauthService": as.URL, "clientId": "c", "clientSecret": "s"}))
		policytest.WantStatus(t, g.Get(t, "/x"), http.StatusServiceUnavailable)
		if up.Hits() != 0 {
			t.Fatalf("body %s: request forwarded", body)
		}
		as.Close()
	}
}
