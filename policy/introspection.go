package policy

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flexgw/flexgw/ir"
)

// introspectionConfig is oauth2-token-introspection-flex's configuration:
// Bearer tokens are checked with an RFC 7662 introspection endpoint.
type introspectionConfig struct {
	IntrospectionURL        string   `json:"introspectionURL"`
	AuthorizationValue      string   `json:"authorizationValue"`
	ValidatedTokenTTL       *float64 `json:"validatedTokenTTL"`
	AuthenticationTimeout   *float64 `json:"authenticationTimeout"` // milliseconds
	SkipClientIDValidation  bool     `json:"skipClientIdValidation"`
	ConsumerBy              string   `json:"consumerBy"`
	ExposeHeaders           bool     `json:"exposeHeaders"`
	Scopes                  string   `json:"scopes"`
	ScopeValidationCriteria string   `json:"scopeValidationCriteria"`
	MaxCacheEntries         *int     `json:"maxCacheEntries"`
}

type introspection struct{}

func init() { Register(introspection{}) }

func (introspection) Name() string { return "oauth2-token-introspection-flex" }

type compiledIntrospection struct {
	endpoint, auth string
	ttl, timeout   time.Duration
	consumerBy     string
	scopes         []string
	any            bool // OR instead of AND
	maxEntries     int
}

func parseIntrospection(raw json.RawMessage) (*compiledIntrospection, error) {
	var c introspectionConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	u, err := url.Parse(c.IntrospectionURL)
	if c.IntrospectionURL == "" {
		return nil, fieldErr("introspectionURL", "required")
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fieldErr("introspectionURL", "must be an http or https URL, got %q", c.IntrospectionURL)
	}
	if c.AuthorizationValue == "" {
		return nil, fieldErr("authorizationValue", "required: the Authorization header value (Basic or Bearer) the gateway sends to the introspection endpoint")
	}
	if err := checkHeaderValue("authorizationValue", c.AuthorizationValue); err != nil {
		return nil, err
	}
	out := &compiledIntrospection{endpoint: u.String(), auth: c.AuthorizationValue, ttl: 600 * time.Second, timeout: 10 * time.Second, maxEntries: 1000, consumerBy: c.ConsumerBy}
	if c.ValidatedTokenTTL != nil {
		if *c.ValidatedTokenTTL < 0 {
			return nil, fieldErr("validatedTokenTTL", "must be >= 0 seconds, got %v", *c.ValidatedTokenTTL)
		}
		out.ttl = time.Duration(*c.ValidatedTokenTTL * float64(time.Second))
	}
	if c.AuthenticationTimeout != nil {
		if *c.AuthenticationTimeout <= 0 {
			return nil, fieldErr("authenticationTimeout", "must be > 0 milliseconds, got %v", *c.AuthenticationTimeout)
		}
		out.timeout = time.Duration(*c.AuthenticationTimeout * float64(time.Millisecond))
	}
	switch c.ConsumerBy {
	case "", "client_id", "username":
	default:
		return nil, fieldErr("consumerBy", "must be client_id or username, got %q", c.ConsumerBy)
	}
	out.scopes = strings.Fields(c.Scopes)
	switch strings.ToUpper(c.ScopeValidationCriteria) {
	case "", "AND":
	case "OR":
		out.any = true
	default:
		return nil, fieldErr("scopeValidationCriteria", "must be AND or OR, got %q", c.ScopeValidationCriteria)
	}
	if c.MaxCacheEntries != nil {
		if *c.MaxCacheEntries < 0 {
			return nil, fieldErr("maxCacheEntries", "must be >= 0, got %d", *c.MaxCacheEntries)
		}
		out.maxEntries = *c.MaxCacheEntries
	}
	return out, nil
}

// Validate implements Definition.
func (introspection) Validate(raw json.RawMessage) error {
	_, err := parseIntrospection(raw)
	return err
}

// introspected is what the policy keeps of an RFC 7662 answer.
type introspected struct {
	active   bool
	scopes   map[string]bool
	clientID string
	username string
	until    time.Time // cache expiry
}

func (c *compiledIntrospection) introspect(ctx context.Context, ic *introspectionClient, token string) (*introspected, error) {
	var r struct {
		Active   bool        `json:"active"`
		Scope    string      `json:"scope"`
		ClientID string      `json:"client_id"`
		Username string      `json:"username"`
		Exp      json.Number `json:"exp"`
	}
	if err := ic.introspect(ctx, c.endpoint, token, &r); err != nil {
		return nil, err
	}
	out := &introspected{active: r.Active, scopes: map[string]bool{}, clientID: r.ClientID, username: r.Username, until: time.Now().Add(c.ttl)}
	for _, s := range strings.Fields(r.Scope) {
		out.scopes[s] = true
	}
	if out.active && r.Exp != "" {
		exp, err := r.Exp.Int64()
		if err != nil {
			return nil, fmt.Errorf("introspection endpoint: exp %q is not a NumericDate", r.Exp)
		}
		if exp > 0 && exp < 253402300800 { // through year 9999
			t := time.Unix(exp, 0)
			if !time.Now().Before(t) {
				out.active = false
			} else if t.Before(out.until) {
				out.until = t // never cache past the token's expiry
			}
		}
	}
	return out, nil
}

// bearerToken reads an RFC 6750 §2.1 Authorization: Bearer token.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	t := strings.TrimSpace(h[7:])
	return t, t != ""
}

// Build implements Definition.
func (d introspection) Build(env Env, p *ir.Policy) (Middleware, error) {
	c, err := parseIntrospection(p.Config)
	if err != nil {
		return nil, err
	}
	name := d.Name()
	log := logger(env).With("policy", name, "binding", p.Binding)
	ic := &introspectionClient{
		http:          &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		timeout:       c.timeout,
		authorization: c.auth,
	}
	cache := newTokenCache[*introspected](c.maxEntries)
	const challenge = `Bearer realm="flexgw"`
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, ok := bearerToken(r)
			if !ok {
				deny(w, r, name, Denied, http.StatusUnauthorized, "unauthorized: bearer token required", "WWW-Authenticate", challenge)
				return
			}
			k := sha256.Sum256([]byte(tok))
			res, ok := cache.get(k)
			if !ok {
				var err error
				res, err = c.introspect(r.Context(), ic, tok)
				if err != nil {
					log.Warn("token introspection failed", "err", err)
					deny(w, r, name, Error, http.StatusServiceUnavailable, "token introspection unavailable")
					return
				}
				cache.put(k, res, res.until)
			}
			if !res.active {
				deny(w, r, name, Denied, http.StatusUnauthorized, "unauthorized: invalid or expired token",
					"WWW-Authenticate", challenge+`, error="invalid_token"`)
				return
			}
			if !scopesSatisfied(c.scopes, c.any, res.scopes) {
				deny(w, r, name, Denied, http.StatusForbidden, "forbidden: insufficient scope",
					"WWW-Authenticate", challenge+`, error="insufficient_scope", scope="`+strings.Join(c.scopes, " ")+`"`)
				return
			}
			principal := res.clientID
			if c.consumerBy == "username" {
				principal = res.username
			}
			r, _ = authenticate(r, Authentication{Principal: principal, ClientID: res.clientID})
			Decide(r, name, Allowed)
			next.ServeHTTP(w, r)
		})
	}, nil
}

// SecretFields implements Secrets: the credentials sent to the
// introspection endpoint.
func (introspection) SecretFields() []string { return []string{"authorizationValue"} }
