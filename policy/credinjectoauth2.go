package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/flexgw/flexgw/ir"
)

// credInjectOAuth2Config is credential-injection-oauth2-flex's
// configuration: the gateway obtains an access token from an OAuth 2.0
// token endpoint (RFC 6749 client credentials or resource owner password
// grant) and sends it upstream as a Bearer token.
type credInjectOAuth2Config struct {
	OAuthService string `json:"oauthService"`
	// GrantType is clientCredentials (default) or password.
	GrantType string `json:"grantType"`
	// CredentialLocation says where the client authenticates to the token
	// endpoint: header (HTTP Basic, default) or body (form fields).
	CredentialLocation            string   `json:"credentialLocation"`
	ClientID                      string   `json:"clientId"`
	ClientSecret                  string   `json:"clientSecret"`
	Username                      string   `json:"username"`
	Password                      string   `json:"password"`
	Scope                         []string `json:"scope"`
	Overwrite                     *bool    `json:"overwrite"`
	TokenFetchTimeout             *float64 `json:"tokenFetchTimeout"`
	AllowRequestWithoutCredential bool     `json:"allowRequestWithoutCredential"`
}

type credInjectOAuth2 struct{}

func init() { Register(credInjectOAuth2{}) }

func (credInjectOAuth2) Name() string { return "credential-injection-oauth2-flex" }

// maxTokenResponse bounds what the policy reads from a token endpoint.
const maxTokenResponse = 1 << 20

type oauth2Injection struct {
	endpoint  string
	form      url.Values
	basicID   string // client id and secret for HTTP Basic, when header
	basicPass string
	useBasic  bool
	overwrite bool
	timeout   time.Duration
	allowBare bool
}

func parseCredInjectOAuth2(raw json.RawMessage) (*oauth2Injection, error) {
	var c credInjectOAuth2Config
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	if c.OAuthService == "" {
		return nil, fieldErr("oauthService", "required: the URL of the token endpoint")
	}
	u, err := url.Parse(c.OAuthService)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fieldErr("oauthService", "must be an http or https URL, got %q", c.OAuthService)
	}
	in := &oauth2Injection{endpoint: u.String(), form: url.Values{}, overwrite: boolOr(c.Overwrite, true), timeout: 10 * time.Second, allowBare: c.AllowRequestWithoutCredential}
	if c.TokenFetchTimeout != nil {
		if *c.TokenFetchTimeout <= 0 {
			return nil, fieldErr("tokenFetchTimeout", "must be > 0 seconds, got %v", *c.TokenFetchTimeout)
		}
		in.timeout = time.Duration(*c.TokenFetchTimeout * float64(time.Second))
	}
	if c.ClientID == "" {
		return nil, fieldErr("clientId", "required")
	}
	if c.ClientSecret == "" {
		return nil, fieldErr("clientSecret", "required")
	}
	switch c.GrantType {
	case "", "clientCredentials":
		in.form.Set("grant_type", "client_credentials")
	case "password":
		if c.Username == "" {
			return nil, fieldErr("username", "required for the password grant type")
		}
		if c.Password == "" {
			return nil, fieldErr("password", "required for the password grant type")
		}
		in.form.Set("grant_type", "password")
		in.form.Set("username", c.Username)
		in.form.Set("password", c.Password)
	default:
		return nil, fieldErr("grantType", "must be clientCredentials or password, got %q", c.GrantType)
	}
	for i, s := range c.Scope {
		// RFC 6749 §3.3: scope-token is printable ASCII without space, '"' and '\'.
		if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r > '~' || r == '"' || r == '\\' }) {
			return nil, fieldErr(fmt.Sprintf("scope[%d]", i), "%q is not a valid scope token (RFC 6749 §3.3)", s)
		}
	}
	if len(c.Scope) > 0 {
		in.form.Set("scope", strings.Join(c.Scope, " "))
	}
	switch c.CredentialLocation {
	case "", "header":
		// RFC 6749 §2.3.1: id and secret are form-encoded, then Basic.
		in.useBasic, in.basicID, in.basicPass = true, url.QueryEscape(c.ClientID), url.QueryEscape(c.ClientSecret)
	case "body":
		in.form.Set("client_id", c.ClientID)
		in.form.Set("client_secret", c.ClientSecret)
	default:
		return nil, fieldErr("credentialLocation", "must be header or body, got %q", c.CredentialLocation)
	}
	return in, nil
}

// Validate implements Definition.
func (credInjectOAuth2) Validate(raw json.RawMessage) error {
	_, err := parseCredInjectOAuth2(raw)
	return err
}

// tokenSource fetches and caches one access token; concurrent requests
// that find no valid token wait for one fetch instead of each sending one.
type tokenSource struct {
	cfg    *oauth2Injection
	client *http.Client
	log    *slog.Logger
	now    func() time.Time

	mu       sync.Mutex
	token    string // "Bearer <access_token>"
	refresh  time.Time
	expires  time.Time
	inflight chan struct{}
	lastErr  error
}

// get returns a header value for Authorization, fetching when the cached
// token is due for refresh. A token still valid is used while a refresh
// runs.
func (s *tokenSource) get(ctx context.Context) (string, error) {
	s.mu.Lock()
	now := s.now()
	if s.token != "" && now.Before(s.refresh) {
		t := s.token
		s.mu.Unlock()
		return t, nil
	}
	if s.inflight == nil {
		s.inflight = make(chan struct{})
		go s.fetch(s.inflight)
	}
	wait := s.inflight
	if s.token != "" && now.Before(s.expires) {
		t := s.token
		s.mu.Unlock()
		return t, nil
	}
	s.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && s.now().Before(s.expires) {
		return s.token, nil
	}
	if s.lastErr == nil {
		s.lastErr = errors.New("token endpoint returned no usable token")
	}
	return "", s.lastErr
}

func (s *tokenSource) fetch(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.timeout)
	defer cancel()
	tok, life, err := s.request(ctx)
	s.mu.Lock()
	s.inflight = nil
	s.lastErr = err
	if err == nil {
		now := s.now()
		s.token = "Bearer " + tok
		s.expires = now.Add(life)
		// Refresh ahead of expiry so requests rarely wait for a fetch.
		early := min(life/10, 30*time.Second)
		s.refresh = s.expires.Add(-early)
	} else {
		s.log.Warn("oauth2 token fetch failed", "endpoint", s.cfg.endpoint, "err", err)
	}
	s.mu.Unlock()
	close(done)
}

// tokenResponse is RFC 6749 §5.1's successful response.
type tokenResponse struct {
	AccessToken string      `json:"access_token"`
	TokenType   string      `json:"token_type"`
	ExpiresIn   json.Number `json:"expires_in"`
	Error       string      `json:"error"`
}

// defaultTokenLifetime applies when the endpoint omits expires_in
// (RFC 6749 leaves it optional).
const defaultTokenLifetime = time.Minute

func (s *tokenSource) request(ctx context.Context) (string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.endpoint, strings.NewReader(s.cfg.form.Encode()))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if s.cfg.useBasic {
		req.SetBasicAuth(s.cfg.basicID, s.cfg.basicPass)
	}
	res, err := s.client.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("token endpoint: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxTokenResponse+1))
	if err != nil {
		return "", 0, fmt.Errorf("token endpoint: read response: %w", err)
	}
	if len(body) > maxTokenResponse {
		return "", 0, fmt.Errorf("token endpoint: response larger than %d bytes", maxTokenResponse)
	}
	var tr tokenResponse
	jsonErr := json.Unmarshal(body, &tr)
	if res.StatusCode != http.StatusOK {
		if jsonErr == nil && tr.Error != "" {
			return "", 0, fmt.Errorf("token endpoint: status %d, error %q", res.StatusCode, tr.Error)
		}
		return "", 0, fmt.Errorf("token endpoint: status %d", res.StatusCode)
	}
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt != "application/json" {
		return "", 0, fmt.Errorf("token endpoint: content type %q, want application/json", mt)
	}
	if jsonErr != nil {
		return "", 0, fmt.Errorf("token endpoint: %w", jsonErr)
	}
	if tr.AccessToken == "" {
		return "", 0, errors.New("token endpoint: no access_token in response")
	}
	// RFC 6750 b64token, so the value can travel in a header unchanged.
	if strings.ContainsFunc(tr.AccessToken, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~+/=", r))
	}) {
		return "", 0, errors.New("token endpoint: access_token has characters a Bearer token cannot carry (RFC 6750 §2.1)")
	}
	if !strings.EqualFold(tr.TokenType, "bearer") {
		return "", 0, fmt.Errorf("token endpoint: token_type %q, want Bearer", tr.TokenType)
	}
	life := defaultTokenLifetime
	if tr.ExpiresIn != "" {
		n, err := tr.ExpiresIn.Int64()
		if err != nil || n <= 0 {
			return "", 0, fmt.Errorf("token endpoint: expires_in %q is not a positive integer", tr.ExpiresIn)
		}
		life = time.Duration(min(n, 366*24*3600)) * time.Second
	}
	return tr.AccessToken, life, nil
}

// Build implements Definition.
func (d credInjectOAuth2) Build(env Env, p *ir.Policy) (Middleware, error) {
	c, err := parseCredInjectOAuth2(p.Config)
	if err != nil {
		return nil, err
	}
	name := d.Name()
	src := &tokenSource{
		cfg: c, now: time.Now,
		client: &http.Client{Timeout: c.timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		log:    logger(env).With("policy", name, "binding", p.Binding),
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !c.overwrite && r.Header.Get("Authorization") != "" {
				Decide(r, name, Allowed)
				next.ServeHTTP(w, r)
				return
			}
			tok, err := src.get(r.Context())
			if err != nil {
				if c.allowBare {
					Decide(r, name, Allowed)
					next.ServeHTTP(w, r)
					return
				}
				// The reason is in the agent's log; the client learns
				// nothing about the token endpoint.
				deny(w, r, name, Error, http.StatusServiceUnavailable, "upstream credential unavailable")
				return
			}
			r.Header.Set("Authorization", tok)
			Decide(r, name, Allowed)
			next.ServeHTTP(w, r)
		})
	}, nil
}

// SecretFields implements Secrets: the values that authenticate.
func (credInjectOAuth2) SecretFields() []string { return []string{"clientSecret", "password"} }
