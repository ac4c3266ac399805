package policy

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy/internal/jose"
)

// oidcConfig is openidconnect-access-token-enforcement-flex's
// configuration: Flex's fields, plus where the OpenID provider is. Flex
// takes the provider from Anypoint Access Management, which Local Mode
// does not have; flexgw reads it from `issuer` (OpenID Connect Discovery)
// and the gateway's client credentials for the token validation endpoint
// from `clientId`/`clientSecret` (sent in the body, RFC 6749 §2.3.1, as
// Flex sends them).
type oidcConfig struct {
	AuthenticationTimeout       FlexInt  `json:"authenticationTimeout"` // milliseconds
	Scopes                      string   `json:"scopes"`
	SecureTrustStore            FlexBool `json:"secureTrustStore"`
	ScopeValidationCriteria     string   `json:"scopeValidationCriteria"`
	ExposeHeaders               FlexBool `json:"exposeHeaders"`
	SkipClientIDValidation      FlexBool `json:"skipClientIdValidation"`
	MaxFederationExpirationTime FlexInt  `json:"maxFederationExpirationTime"` // seconds, -1: the token's own expiry
	MaxCacheSize                FlexInt  `json:"maxCacheSize"`

	Issuer       string `json:"issuer"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
}

type oidcEnforcement struct{}

func init() { Register(oidcEnforcement{}) }

func (oidcEnforcement) Name() string { return "openidconnect-access-token-enforcement-flex" }

// compiledOIDC is a validated configuration.
type compiledOIDC struct {
	issuer                 string
	clientID, secret       string
	timeout                time.Duration
	scopes                 []string
	any                    bool
	expose                 bool
	skipClientIDValidation bool
	maxFederation          time.Duration // 0: until the token expires
	maxCache               int
}

func parseOIDC(raw json.RawMessage) (*compiledOIDC, error) {
	var c oidcConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	out := &compiledOIDC{timeout: 10 * time.Second, maxCache: 1000, expose: c.ExposeHeaders.Or(false),
		skipClientIDValidation: c.SkipClientIDValidation.Or(true), clientID: c.ClientID, secret: c.ClientSecret}
	if c.AuthenticationTimeout.Set {
		if c.AuthenticationTimeout.V <= 0 {
			return nil, fieldErr("authenticationTimeout", "must be > 0 milliseconds, got %d", c.AuthenticationTimeout.V)
		}
		out.timeout = time.Duration(c.AuthenticationTimeout.V) * time.Millisecond
	}
	out.scopes = strings.Fields(c.Scopes)
	switch strings.ToUpper(c.ScopeValidationCriteria) {
	case "", "AND":
	case "OR":
		out.any = true
	default:
		return nil, fieldErr("scopeValidationCriteria", "must be AND or OR, got %q", c.ScopeValidationCriteria)
	}
	if c.MaxFederationExpirationTime.Set && c.MaxFederationExpirationTime.V != -1 {
		if c.MaxFederationExpirationTime.V < 0 {
			return nil, fieldErr("maxFederationExpirationTime", "must be -1 (the token's expiry) or >= 0 seconds, got %d", c.MaxFederationExpirationTime.V)
		}
		out.maxFederation = time.Duration(c.MaxFederationExpirationTime.V) * time.Second
		if out.maxFederation == 0 {
			out.maxCache = 0 // cached for no time at all
		}
	}
	if c.MaxCacheSize.Set {
		if c.MaxCacheSize.V < 0 {
			return nil, fieldErr("maxCacheSize", "must be >= 0 (0 disables caching), got %d", c.MaxCacheSize.V)
		}
		if out.maxCache != 0 {
			out.maxCache = int(c.MaxCacheSize.V)
		}
	}
	if c.Issuer != "" {
		u, err := url.Parse(c.Issuer)
		// OpenID Connect Discovery §3: an https URL without query or
		// fragment; http is accepted for a loopback or lab provider.
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fieldErr("issuer", "must be the OpenID provider's issuer URL (https://host/path, no query), got %q", c.Issuer)
		}
		out.issuer = strings.TrimSuffix(c.Issuer, "/")
	}
	if (c.ClientID == "") != (c.ClientSecret == "") {
		return nil, fieldErr("clientSecret", "clientId and clientSecret go together (the token validation endpoint's client credentials)")
	}
	if err := checkHeaderValue("clientId", c.ClientID); err != nil {
		return nil, err
	}
	return out, nil
}

// Validate implements Definition.
func (oidcEnforcement) Validate(raw json.RawMessage) error {
	_, err := parseOIDC(raw)
	return err
}

// SecretFields implements Secrets.
func (oidcEnforcement) SecretFields() []string { return []string{"clientSecret"} }

// Warnings implements Warner: Flex's own configuration names no provider.
func (oidcEnforcement) Warnings(p *ir.Policy) []string {
	c, err := parseOIDC(p.Config)
	if err != nil {
		return nil
	}
	var out []string
	if c.issuer == "" {
		out = append(out, "no OpenID provider: Flex takes it from Anypoint Access Management, which Local Mode lacks; "+
			"set config.issuer (flexgw) to the provider's issuer URL, with clientId/clientSecret for its token validation endpoint — until then every request gets 401")
	}
	if !c.skipClientIDValidation {
		out = append(out, "skipClientIdValidation: false has no Anypoint contracts to check in Local Mode; the client id is recorded as the request's principal, not checked")
	}
	return out
}

// oidcProvider is what discovery says about the provider.
type oidcProvider struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

// oidcDiscovery fetches the provider's metadata once, again after an hour,
// and at most every 5 seconds while it fails.
type oidcDiscovery struct {
	c      *compiledOIDC
	client *http.Client
	mu     sync.Mutex
	meta   *oidcProvider
	jwks   *jose.JWKS
	until  time.Time
	err    error
	// refreshing: a background refresh of known metadata is running.
	refreshing bool
}

// maxDiscoveryDoc bounds the discovery document read.
const maxDiscoveryDoc = 1 << 20

func (d *oidcDiscovery) get(ctx context.Context) (*oidcProvider, *jose.JWKS, error) {
	d.mu.Lock()
	if time.Now().Before(d.until) || (d.meta != nil && d.refreshing) {
		defer d.mu.Unlock()
		return d.meta, d.jwks, d.err
	}
	if d.meta != nil {
		// Known metadata is due: refresh it in the background and keep
		// answering with it, so no request waits on the provider.
		d.refreshing = true
		d.mu.Unlock()
		go func() {
			meta, err := d.fetch(context.Background())
			d.mu.Lock()
			defer d.mu.Unlock()
			d.refreshing = false
			d.store(meta, err)
		}()
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.meta, d.jwks, nil
	}
	// The first fetch: one at a time; the others wait for its outcome.
	defer d.mu.Unlock()
	meta, err := d.fetch(ctx)
	d.store(meta, err)
	return d.meta, d.jwks, d.err
}

// store records a fetch's outcome (d.mu held). A failure keeps metadata
// that worked before and retries after 5 seconds.
func (d *oidcDiscovery) store(meta *oidcProvider, err error) {
	if err != nil {
		if d.meta == nil {
			d.err = err
		}
		d.until = time.Now().Add(5 * time.Second)
		return
	}
	if d.meta == nil || d.meta.JWKSURI != meta.JWKSURI {
		d.jwks = nil
		if meta.JWKSURI != "" {
			d.jwks = &jose.JWKS{URLs: []string{meta.JWKSURI}, TTL: time.Hour, RefetchEvery: 30 * time.Second, Client: d.client}
		}
	}
	d.meta, d.err, d.until = meta, nil, time.Now().Add(time.Hour)
}

func (d *oidcDiscovery) fetch(ctx context.Context) (*oidcProvider, error) {
	ctx, cancel := context.WithTimeout(ctx, d.c.timeout)
	defer cancel()
	u := d.c.issuer + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	res, err := d.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("discovery %s: status %d", u, res.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxDiscoveryDoc))
	if err != nil {
		return nil, fmt.Errorf("discovery %s: %w", u, err)
	}
	var m oidcProvider
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("discovery %s: %w", u, err)
	}
	// Discovery §4.3: the issuer in the document must be exactly the one
	// configured, or a provider could speak for another.
	if strings.TrimSuffix(m.Issuer, "/") != d.c.issuer {
		return nil, fmt.Errorf("discovery %s: issuer %q does not match the configured %q", u, m.Issuer, d.c.issuer)
	}
	if m.IntrospectionEndpoint == "" && m.JWKSURI == "" {
		return nil, fmt.Errorf("discovery %s: neither introspection_endpoint nor jwks_uri", u)
	}
	return &m, nil
}

// oidcStatusError carries the status Flex answers for a failure.
type oidcStatusError struct {
	status int
	msg    string
	err    error
}

func (e *oidcStatusError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

// Flex's statuses: 401 when the provider cannot be reached, 500 for a bad
// answer from it.
func unreachable(err error) error {
	return &oidcStatusError{http.StatusUnauthorized, "authorization server unreachable", err}
}
func badAnswer(err error) error {
	return &oidcStatusError{http.StatusInternalServerError, "bad response from the authorization server", err}
}

// oidcToken is a validated token: its scopes, client id, expiry and the
// string properties exposeHeaders forwards.
type oidcToken struct {
	active   bool
	scopes   map[string]bool
	clientID string
	exp      time.Time
	props    map[string]string
}

// fromClaims reads an RFC 7662 answer or a JWT's claims alike.
func fromClaims(m map[string]any) *oidcToken {
	t := &oidcToken{scopes: map[string]bool{}, props: map[string]string{}}
	if a, ok := m["active"].(bool); ok {
		t.active = a
	}
	switch s := m["scope"].(type) {
	case string:
		for _, x := range strings.Fields(s) {
			t.scopes[x] = true
		}
	case []any:
		for _, x := range s {
			if str, ok := x.(string); ok {
				t.scopes[str] = true
			}
		}
	}
	if scp, ok := m["scp"].([]any); ok {
		for _, x := range scp {
			if str, ok := x.(string); ok {
				t.scopes[str] = true
			}
		}
	}
	t.clientID, _ = m["client_id"].(string)
	if t.clientID == "" {
		t.clientID, _ = m["azp"].(string)
	}
	if exp, ok := numericDate(m["exp"]); ok {
		t.exp = exp
	}
	for k, v := range m {
		if k == "scope" || k == "exp" || k == "active" || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case float64:
			s = strconv.FormatFloat(x, 'f', -1, 64)
		case bool:
			s = strconv.FormatBool(x)
		default:
			continue // Flex forwards no objects or arrays
		}
		if httpguts.ValidHeaderFieldValue(s) {
			t.props[k] = s
		}
	}
	return t
}

// introspect asks the provider's token validation endpoint. Flex answers
// 401 when the provider cannot be reached, 500 for a bad answer.
func (c *compiledOIDC) introspect(ctx context.Context, ic *introspectionClient, endpoint, token string) (*oidcToken, error) {
	var m map[string]any
	if err := ic.introspect(ctx, endpoint, token, &m); err != nil {
		if errors.Is(err, errIntrospectionUnreachable) {
			return nil, unreachable(err)
		}
		return nil, badAnswer(err)
	}
	return fromClaims(m), nil
}

// oidcAlgs are the algorithms a provider's JWKS may verify: asymmetric
// only, since a JWKS publishes public keys and an "oct" key in it must
// never turn into an HMAC secret anyone can sign with.
var oidcAlgs = map[string]bool{"RS256": true, "RS384": true, "RS512": true, "PS256": true, "PS384": true, "PS512": true, "ES256": true, "ES384": true, "ES512": true}

// verifyJWT validates a JWT access token with the provider's JWKS: the
// signature, the issuer, and exp/nbf.
func (c *compiledOIDC) verifyJWT(ctx context.Context, jwks *jose.JWKS, token string) (*oidcToken, error) {
	t, err := jose.ParseJWS(token)
	if err != nil || !oidcAlgs[t.Header.Alg] {
		return &oidcToken{}, nil // not a JWT this provider signs: invalid
	}
	keys, err := jwks.Lookup(ctx, t.Header.Kid)
	if errors.Is(err, jose.ErrUnknownKid) {
		return &oidcToken{}, nil
	}
	if err != nil {
		return nil, unreachable(err)
	}
	ok := false
	for _, k := range keys {
		if jose.Verify(t, t.Header.Alg, k) == nil {
			ok = true
			break
		}
	}
	var claims map[string]any
	if !ok || json.Unmarshal(t.Payload, &claims) != nil || claims == nil {
		return &oidcToken{}, nil
	}
	if iss, _ := claims["iss"].(string); strings.TrimSuffix(iss, "/") != c.issuer {
		return &oidcToken{}, nil
	}
	now := time.Now()
	if nbf, present := claims["nbf"]; present {
		if t, ok := numericDate(nbf); !ok || now.Before(t) {
			return &oidcToken{}, nil
		}
	}
	exp, ok := numericDate(claims["exp"])
	if !ok || !now.Before(exp) {
		return &oidcToken{}, nil // an access token without exp never expires: refused
	}
	tok := fromClaims(claims)
	tok.active = true
	return tok, nil
}

// Build implements Definition.
func (d oidcEnforcement) Build(env Env, p *ir.Policy) (Middleware, error) {
	c, err := parseOIDC(p.Config)
	if err != nil {
		return nil, err
	}
	client, err := PolicyCallClient(env, c.timeout)
	if err != nil {
		return nil, err
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	name := d.Name()
	log := logger(env).With("policy", name, "binding", p.Binding)
	disc := &oidcDiscovery{c: c, client: client}
	cache := newTokenCache[*oidcToken](c.maxCache)
	ic := &introspectionClient{http: client, timeout: c.timeout, clientID: c.clientID, clientSecret: c.secret}
	const challenge = `Bearer realm="flexgw"`
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c.expose {
				// X-AGW-* reach the upstream only from the provider's
				// answer: a client's own would otherwise pass as verified.
				for k := range r.Header {
					if len(k) >= 6 && strings.EqualFold(k[:6], "x-agw-") {
						r.Header.Del(k)
					}
				}
			}
			tok, ok := bearerToken(r)
			if !ok {
				deny(w, r, name, Denied, http.StatusUnauthorized, "unauthorized: bearer token required", "WWW-Authenticate", challenge)
				return
			}
			if !httpguts.ValidHeaderFieldValue(tok) || strings.ContainsAny(tok, " \t") {
				deny(w, r, name, Denied, http.StatusBadRequest, "invalid token", "WWW-Authenticate", challenge+`, error="invalid_request"`)
				return
			}
			k := sha256.Sum256([]byte(tok))
			info, ok := cache.get(k)
			if !ok {
				var err error
				info, err = d.validate(r.Context(), c, disc, ic, tok)
				if err != nil {
					status := http.StatusUnauthorized
					var se *oidcStatusError
					if errors.As(err, &se) {
						status = se.status
					}
					log.Warn("token validation failed", "err", err)
					deny(w, r, name, Error, status, "token validation unavailable", "WWW-Authenticate", challenge)
					return
				}
				if info.active && !info.exp.IsZero() {
					// Flex: tokens without an expiry are not cached.
					until := info.exp
					if c.maxFederation > 0 && time.Now().Add(c.maxFederation).Before(until) {
						until = time.Now().Add(c.maxFederation)
					}
					cache.put(k, info, until)
				}
			}
			if !info.active || (!info.exp.IsZero() && !time.Now().Before(info.exp)) {
				deny(w, r, name, Denied, http.StatusUnauthorized, "unauthorized: invalid or expired token", "WWW-Authenticate", challenge+`, error="invalid_token"`)
				return
			}
			if !scopesSatisfied(c.scopes, c.any, info.scopes) {
				deny(w, r, name, Denied, http.StatusForbidden, "forbidden: insufficient scope",
					"WWW-Authenticate", challenge+`, error="insufficient_scope", scope="`+strings.Join(c.scopes, " ")+`"`)
				return
			}
			if c.expose {
				for k, v := range info.props {
					r.Header.Set("X-AGW-"+k, v)
				}
			}
			r, _ = authenticate(r, Authentication{Principal: info.clientID, ClientID: info.clientID})
			Decide(r, name, Allowed)
			next.ServeHTTP(w, r)
		})
	}, nil
}

// validate asks the provider: its RFC 7662 endpoint when discovery names
// one (the token validation endpoint Flex calls), else its JWKS for a JWT
// access token.
func (oidcEnforcement) validate(ctx context.Context, c *compiledOIDC, disc *oidcDiscovery, ic *introspectionClient, tok string) (*oidcToken, error) {
	if c.issuer == "" {
		return nil, unreachable(errors.New("no OpenID provider configured (config.issuer)"))
	}
	meta, jwks, err := disc.get(ctx)
	if err != nil {
		return nil, unreachable(err)
	}
	if meta.IntrospectionEndpoint != "" {
		return c.introspect(ctx, ic, meta.IntrospectionEndpoint, tok)
	}
	return c.verifyJWT(ctx, jwks, tok)
}
