package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy/internal/dw"
	"github.com/flexgw/flexgw/policy/internal/jose"
)

// jwtConfig is jwt-validation-flex's configuration: Flex's fields, plus
// issuer, clockSkewSeconds, claimsToHeaders and jwksRefetchIntervalSeconds.
type jwtConfig struct {
	// SigningMethod is rsa (default), hmac, es, or ps (flexgw: RSASSA-PSS).
	// With SigningKeyLength it pins the one algorithm accepted ("rsa"+256 = RS256).
	SigningMethod    string `json:"signingMethod"`
	SigningKeyLength int    `json:"signingKeyLength"`
	// JWTOrigin is httpBearerAuthenticationHeader (default) or customExpression.
	JWTOrigin     string `json:"jwtOrigin"`
	JWTExpression string `json:"jwtExpression"`
	// JWTKeyOrigin is text (default: TextKey) or jwks (JWKSURL).
	JWTKeyOrigin string `json:"jwtKeyOrigin"`
	TextKey      string `json:"textKey"`
	// JWKSURL is one or more comma-separated URLs.
	JWKSURL string `json:"jwksUrl"`
	// JWKSServiceTimeToLive is the cache lifetime in minutes (default 60).
	JWKSServiceTimeToLive int `json:"jwksServiceTimeToLive"`
	// JWKSServiceConnectionTimeout is the fetch timeout in ms (default 10000).
	JWKSServiceConnectionTimeout int `json:"jwksServiceConnectionTimeout"`
	// JWKSRefetchIntervalSeconds bounds refetches on unknown kids (default 30).
	JWKSRefetchIntervalSeconds int `json:"jwksRefetchIntervalSeconds"`

	ValidateAudClaim   bool   `json:"validateAudClaim"`
	MandatoryAudClaim  bool   `json:"mandatoryAudClaim"`
	SupportedAudiences string `json:"supportedAudiences"`
	MandatoryExpClaim  bool   `json:"mandatoryExpClaim"`
	MandatoryNbfClaim  bool   `json:"mandatoryNbfClaim"`
	// Issuer (flexgw) is a comma-separated list of accepted iss values;
	// when set, iss is mandatory.
	Issuer string `json:"issuer"`
	// ClockSkewSeconds tolerates clock drift on exp and nbf (default 60).
	ClockSkewSeconds *int `json:"clockSkewSeconds"`

	ValidateCustomClaim      bool        `json:"validateCustomClaim"`
	MandatoryCustomClaims    []claimRule `json:"mandatoryCustomClaims"`
	NonMandatoryCustomClaims []claimRule `json:"nonMandatoryCustomClaims"`

	SkipClientIDValidation *bool  `json:"skipClientIdValidation"`
	ClientIDExpression     string `json:"clientIdExpression"`

	// ClaimsToHeaders (flexgw) forwards claims to the upstream as headers;
	// a client-sent header of the same name is removed first.
	ClaimsToHeaders []claimHeader `json:"claimsToHeaders"`
}

type claimRule struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type claimHeader struct {
	Claim  string `json:"claim"`
	Header string `json:"header"`
}

type jwtValidation struct{}

func init() { Register(jwtValidation{}) }

func (jwtValidation) Name() string { return "jwt-validation-flex" }

// jwtPolicy is one compiled binding.
type jwtPolicy struct {
	cfg       jwtConfig
	alg       string
	localKey  any
	jwks      *jose.JWKS
	tokenExpr *dw.Expr
	clientID  *dw.Expr
	audiences []string
	issuers   []string
	skew      time.Duration
	mandatory []compiledClaim
	optional  []compiledClaim
	now       func() time.Time
	log       *slog.Logger
	api       string
	verified  verifiedCache
}

// verifiedCache remembers tokens whose signature verified, with their
// claims, as Envoy's jwt_authn does (jwt_cache_config): a client sends the
// same token with every request, and parsing and verifying it again was
// most of the policy's cost. Only the signature check and the claims
// parse are skipped; exp, nbf and every other claim rule are checked on
// each request. A token verified against a JWKS is trusted for at most
// jwksCacheFor, so a key removed from the set stops working soon. The
// cached claims are shared by the requests that send the token: nothing
// may change them (Authentication.Claims is read-only).
type verifiedCache struct {
	mu sync.RWMutex
	m  map[string]verifiedToken
}

type verifiedToken struct {
	claims map[string]any
	until  time.Time
}

const (
	verifiedCacheSize = 1024
	jwksCacheFor      = time.Minute
)

func (c *verifiedCache) get(raw string, now time.Time) (map[string]any, bool) {
	c.mu.RLock()
	v, ok := c.m[raw]
	c.mu.RUnlock()
	if !ok || now.After(v.until) {
		return nil, false
	}
	return v.claims, true
}

func (c *verifiedCache) put(raw string, claims map[string]any, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= verifiedCacheSize {
		// Only tokens with a valid signature get here, so the map cannot
		// be flooded by forged ones; starting over is simpler than LRU.
		c.m = make(map[string]verifiedToken, 64)
	}
	c.m[raw] = verifiedToken{claims: claims, until: until}
}

type compiledClaim struct {
	key   string
	value string
	expr  *dw.Expr // set when value is an expression
}

func parseJWT(raw json.RawMessage, parseKey bool) (*jwtPolicy, error) {
	var c jwtConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	p := &jwtPolicy{cfg: c, now: time.Now}
	if c.SigningMethod == "" {
		c.SigningMethod = "rsa"
	}
	if c.SigningKeyLength == 0 {
		c.SigningKeyLength = 256
	}
	var prefix string
	switch c.SigningMethod {
	case "rsa":
		prefix = "RS"
	case "ps":
		prefix = "PS"
	case "hmac":
		prefix = "HS"
	case "es":
		prefix = "ES"
	case "none":
		return nil, fieldErr("signingMethod", `"none" is not supported: unsigned tokens can be forged by anyone; use rsa, es, ps or hmac`)
	default:
		return nil, fieldErr("signingMethod", "must be rsa, es, ps or hmac, got %q", c.SigningMethod)
	}
	switch c.SigningKeyLength {
	case 256, 384, 512:
	default:
		return nil, fieldErr("signingKeyLength", "must be 256, 384 or 512, got %d", c.SigningKeyLength)
	}
	p.alg = prefix + strconv.Itoa(c.SigningKeyLength)

	switch c.JWTOrigin {
	case "", "httpBearerAuthenticationHeader":
	case "customExpression":
		if c.JWTExpression == "" {
			c.JWTExpression = "#[attributes.headers['jwt']]"
		}
		e, err := compileExpr("jwtExpression", c.JWTExpression)
		if err != nil {
			return nil, err
		}
		p.tokenExpr = e
	default:
		return nil, fieldErr("jwtOrigin", "must be httpBearerAuthenticationHeader or customExpression, got %q", c.JWTOrigin)
	}

	switch c.JWTKeyOrigin {
	case "", "text":
		if parseKey {
			k, err := jose.ParseTextKey(c.SigningMethod, c.TextKey)
			if err != nil {
				return nil, fieldWrap("textKey", err)
			}
			p.localKey = k
		} else if c.TextKey == "" {
			return nil, fieldErr("textKey", "required when jwtKeyOrigin is text")
		}
	case "jwks":
		if c.SigningMethod == "hmac" {
			return nil, fieldErr("jwtKeyOrigin", "jwks cannot hold an HMAC secret; use text")
		}
		urls := splitList(c.JWKSURL)
		if len(urls) == 0 {
			return nil, fieldErr("jwksUrl", "required when jwtKeyOrigin is jwks")
		}
		for _, u := range urls {
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				return nil, fieldErr("jwksUrl", "%q is not an http(s) URL", u)
			}
		}
		ttl := c.JWKSServiceTimeToLive
		if ttl <= 0 {
			ttl = 60
		}
		timeout := c.JWKSServiceConnectionTimeout
		if timeout <= 0 {
			timeout = 10000
		}
		every := c.JWKSRefetchIntervalSeconds
		if every <= 0 {
			every = 30
		}
		p.jwks = &jose.JWKS{
			URLs: urls, TTL: time.Duration(ttl) * time.Minute,
			RefetchEvery: time.Duration(every) * time.Second,
			Client:       &http.Client{Timeout: time.Duration(timeout) * time.Millisecond},
		}
	default:
		return nil, fieldErr("jwtKeyOrigin", "must be text or jwks, got %q", c.JWTKeyOrigin)
	}

	if c.ValidateAudClaim {
		p.audiences = splitList(c.SupportedAudiences)
		if len(p.audiences) == 0 {
			return nil, fieldErr("supportedAudiences", "required when validateAudClaim is true")
		}
	}
	p.issuers = splitList(c.Issuer)
	p.skew = 60 * time.Second
	if c.ClockSkewSeconds != nil {
		if *c.ClockSkewSeconds < 0 {
			return nil, fieldErr("clockSkewSeconds", "must be >= 0")
		}
		p.skew = time.Duration(*c.ClockSkewSeconds) * time.Second
	}
	for _, set := range []struct {
		field string
		in    []claimRule
		out   *[]compiledClaim
	}{{"mandatoryCustomClaims", c.MandatoryCustomClaims, &p.mandatory}, {"nonMandatoryCustomClaims", c.NonMandatoryCustomClaims, &p.optional}} {
		for i, r := range set.in {
			f := fmt.Sprintf("%s[%d]", set.field, i)
			if r.Key == "" {
				return nil, fieldErr(f+".key", "required")
			}
			cc := compiledClaim{key: r.Key, value: r.Value}
			e, err := compileExpr(f+".value", r.Value)
			if err != nil {
				return nil, err
			}
			if !e.IsLiteral() {
				cc.expr = e
			}
			*set.out = append(*set.out, cc)
		}
	}
	if c.ClientIDExpression != "" {
		e, err := compileExpr("clientIdExpression", c.ClientIDExpression)
		if err != nil {
			return nil, err
		}
		p.clientID = e
	}
	for i, h := range c.ClaimsToHeaders {
		if h.Claim == "" || h.Header == "" {
			return nil, fieldErr(fmt.Sprintf("claimsToHeaders[%d]", i), "claim and header are both required")
		}
	}
	p.cfg = c
	return p, nil
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// Validate implements Definition.
func (jwtValidation) Validate(raw json.RawMessage) error {
	_, err := parseJWT(raw, true)
	return err
}

// Build implements Definition.
func (d jwtValidation) Build(env Env, p *ir.Policy) (Middleware, error) {
	jp, err := parseJWT(p.Config, true)
	if err != nil {
		return nil, err
	}
	jp.log = logger(env).With("policy", d.Name(), "binding", p.Binding)
	jp.api = apiName(env)
	if jp.jwks != nil {
		jp.jwks.Log = jp.log
		if jp.jwks.Client, err = PolicyCallClient(env, jp.jwks.Client.Timeout); err != nil {
			return nil, err
		}
	}
	return jp.middleware, nil
}

const jwtName = "jwt-validation-flex"

// jwtError is a rejection with its status.
type jwtError struct {
	status int
	msg    string
}

func (e *jwtError) Error() string { return e.msg }

func unauthorized(format string, args ...any) error {
	return &jwtError{http.StatusUnauthorized, fmt.Sprintf(format, args...)}
}

func (jp *jwtPolicy) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := jp.token(r)
		if raw == "" {
			deny(w, r, jwtName, Denied, http.StatusBadRequest, "JWT token not provided", "WWW-Authenticate", `Bearer realm="flexgw"`)
			return
		}
		claims, err := jp.verify(r.Context(), raw)
		if err == nil {
			r, err = jp.checkClaims(r, claims)
		}
		if err != nil {
			var je *jwtError
			if errors.As(err, &je) {
				deny(w, r, jwtName, Denied, je.status, je.msg, "WWW-Authenticate", `Bearer realm="flexgw", error="invalid_token"`)
				return
			}
			jp.log.Warn("JWT validation could not complete", "err", err)
			deny(w, r, jwtName, Error, http.StatusServiceUnavailable, "JWT validation unavailable: signing keys could not be fetched")
			return
		}
		for _, h := range jp.cfg.ClaimsToHeaders {
			r.Header.Del(h.Header)
			if v, ok := claims[h.Claim]; ok {
				r.Header.Set(h.Header, dw.ToString(v))
			}
		}
		Decide(r, jwtName, Allowed)
		next.ServeHTTP(w, r)
	})
}

func (jp *jwtPolicy) token(r *http.Request) string {
	if jp.tokenExpr != nil {
		t := strings.TrimSpace(jp.tokenExpr.String(&dw.Env{Request: r, API: jp.api}))
		if len(t) > 7 && strings.EqualFold(t[:7], "bearer ") {
			t = strings.TrimSpace(t[7:])
		}
		return t
	}
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// verify checks the signature and returns the claims.
func (jp *jwtPolicy) verify(ctx context.Context, raw string) (map[string]any, error) {
	now := jp.now()
	if claims, ok := jp.verified.get(raw, now); ok {
		return claims, nil
	}
	claims, err := jp.verifyJWS(ctx, raw)
	if err != nil {
		return nil, err
	}
	// Kept until the token expires (checkClaims refuses it from then on
	// anyway), bounded for JWKS keys; a token without exp for an hour.
	until := now.Add(time.Hour)
	if exp, ok := numericDate(claims["exp"]); ok && exp.Before(until) {
		until = exp
	}
	if jp.jwks != nil && now.Add(jwksCacheFor).Before(until) {
		until = now.Add(jwksCacheFor)
	}
	jp.verified.put(raw, claims, until)
	return claims, nil
}

// verifyJWS parses raw, checks its signature and decodes its claims.
func (jp *jwtPolicy) verifyJWS(ctx context.Context, raw string) (map[string]any, error) {
	t, err := jose.ParseJWS(raw)
	if err != nil {
		return nil, unauthorized("invalid token: %v", err)
	}
	if t.Header.Alg != jp.alg {
		return nil, unauthorized("invalid token: algorithm %q not allowed", t.Header.Alg)
	}
	keys := []any{jp.localKey}
	if jp.jwks != nil {
		keys, err = jp.jwks.Lookup(ctx, t.Header.Kid)
		if errors.Is(err, jose.ErrUnknownKid) {
			return nil, unauthorized("invalid token: unknown key id %q", t.Header.Kid)
		}
		if err != nil {
			return nil, err
		}
	}
	verified := false
	for _, k := range keys {
		if jose.Verify(t, jp.alg, k) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, unauthorized("invalid token: signature verification failed")
	}
	var claims map[string]any
	if err := json.Unmarshal(t.Payload, &claims); err != nil || claims == nil {
		return nil, unauthorized("invalid token: claims are not a JSON object")
	}
	return claims, nil
}

// maxNumericDate is 9999-12-31T23:59:59Z. RFC 7519 §2 defines a
// NumericDate as any JSON number of seconds since the epoch; a converter
// that trusts that range overflows int64 (nbf 1e300 became a date in the
// distant past and was accepted). Real tokens carry dates between 1970 and
// a few years from now, so anything outside 0..9999 is refused as malformed
// rather than clamped to something that might pass.
const maxNumericDate = 253402300799

// numericDate converts a decoded NumericDate claim. It accepts fractional
// seconds (RFC 7519 allows them) and rejects non-numbers, NaN, infinities,
// negative values and values past year 9999.
func numericDate(v any) (time.Time, bool) {
	f, ok := v.(float64)
	// Written so NaN fails too: every comparison with NaN is false.
	if !ok || !(f >= 0 && f <= maxNumericDate) {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// checkClaims validates the registered and custom claims and returns the
// request carrying the authentication.
func (jp *jwtPolicy) checkClaims(r *http.Request, claims map[string]any) (*http.Request, error) {
	now := jp.now()
	if v, ok := claims["exp"]; ok {
		exp, ok := numericDate(v)
		if !ok {
			return r, unauthorized("invalid token: exp is not a NumericDate")
		}
		if now.After(exp.Add(jp.skew)) {
			return r, unauthorized("token expired")
		}
	} else if jp.cfg.MandatoryExpClaim {
		return r, unauthorized("token has no exp claim")
	}
	// iat is informational (RFC 7519 §4.1.6) and not compared with the
	// clock, but a token whose iat is not a NumericDate is malformed.
	if v, ok := claims["iat"]; ok {
		if _, ok := numericDate(v); !ok {
			return r, unauthorized("invalid token: iat is not a NumericDate")
		}
	}
	if v, ok := claims["nbf"]; ok {
		nbf, ok := numericDate(v)
		if !ok {
			return r, unauthorized("invalid token: nbf is not a NumericDate")
		}
		if now.Add(jp.skew).Before(nbf) {
			return r, unauthorized("token not yet valid")
		}
	} else if jp.cfg.MandatoryNbfClaim {
		return r, unauthorized("token has no nbf claim")
	}
	if jp.cfg.ValidateAudClaim {
		aud, ok := claims["aud"]
		if !ok {
			if jp.cfg.MandatoryAudClaim {
				return r, unauthorized("token has no aud claim")
			}
		} else if !anyOf(aud, jp.audiences) {
			return r, unauthorized("token audience not accepted")
		}
	}
	if len(jp.issuers) > 0 {
		if iss, ok := claims["iss"].(string); !ok || !anyOf(iss, jp.issuers) {
			return r, unauthorized("token issuer not accepted")
		}
	}
	a := Authentication{Claims: claims}
	if sub, ok := claims["sub"].(string); ok {
		a.Principal = sub
	}
	if cid, ok := claims["client_id"].(string); ok {
		a.ClientID = cid
	}
	r, au := authenticate(r, a)
	if jp.clientID != nil {
		au.ClientID = jp.clientID.String(&dw.Env{Request: r, API: jp.api})
	}
	if jp.cfg.ValidateCustomClaim || len(jp.mandatory)+len(jp.optional) > 0 {
		env := &dw.Env{Request: r, API: jp.api}
		for _, c := range jp.mandatory {
			if _, ok := claims[c.key]; !ok {
				return r, unauthorized("token has no %s claim", c.key)
			}
			if !c.holds(env, claims) {
				return r, unauthorized("token claim %s not accepted", c.key)
			}
		}
		for _, c := range jp.optional {
			if _, ok := claims[c.key]; ok && !c.holds(env, claims) {
				return r, unauthorized("token claim %s not accepted", c.key)
			}
		}
	}
	return r, nil
}

func (c compiledClaim) holds(env *dw.Env, claims map[string]any) bool {
	if c.expr != nil {
		return c.expr.Bool(env)
	}
	return anyOf(claims[c.key], []string{c.value})
}

// anyOf reports whether v (a string, or an array of them) holds one of want.
func anyOf(v any, want []string) bool {
	switch x := v.(type) {
	case string:
		for _, w := range want {
			if x == w {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if anyOf(e, want) {
				return true
			}
		}
	default:
		if v != nil {
			return anyOf(dw.ToString(v), want)
		}
	}
	return false
}

// SecretFields implements Secrets: the values that authenticate.
func (jwtValidation) SecretFields() []string { return []string{"textKey"} }

// JWTSpec is a jwt-validation-flex binding's validated configuration as
// plain data, for a data plane that verifies tokens itself.
type JWTSpec struct {
	Issuers, Audiences []string
	RequireExp         bool
	RequireNbf         bool
	ValidateAud        bool
	RequireAud         bool
	// CustomClaims counts the mandatory and optional claim rules.
	CustomClaims int
	// TokenExpression is the jwtExpression when the token does not come
	// from the bearer Authorization header.
	TokenExpression string
	ClaimsToHeaders []JWTClaimHeader
	// JWKSURLs is set when the keys come from JWKS endpoints; else the
	// key is local (LocalJWKS).
	JWKSURLs     []string
	JWKSTimeout  time.Duration
	JWKSCacheTTL time.Duration
	ClockSkew    time.Duration

	alg      string
	localKey any
}

// JWTClaimHeader copies a claim of a valid token into a request header.
type JWTClaimHeader struct{ Claim, Header string }

// JWTSpecOf validates p's configuration (parsing its key) and returns it
// as a JWTSpec.
func JWTSpecOf(p *ir.Policy) (*JWTSpec, error) {
	jp, err := parseJWT(p.Config, true)
	if err != nil {
		return nil, err
	}
	c := jp.cfg
	s := &JWTSpec{
		Issuers: jp.issuers, Audiences: jp.audiences,
		RequireExp: c.MandatoryExpClaim, RequireNbf: c.MandatoryNbfClaim,
		ValidateAud: c.ValidateAudClaim, RequireAud: c.MandatoryAudClaim,
		CustomClaims: len(jp.mandatory) + len(jp.optional),
		ClockSkew:    jp.skew,
		alg:          jp.alg, localKey: jp.localKey,
	}
	if jp.tokenExpr != nil {
		s.TokenExpression = c.JWTExpression
	}
	for _, h := range c.ClaimsToHeaders {
		s.ClaimsToHeaders = append(s.ClaimsToHeaders, JWTClaimHeader{Claim: h.Claim, Header: h.Header})
	}
	if jp.jwks != nil {
		s.JWKSURLs, s.JWKSTimeout, s.JWKSCacheTTL = jp.jwks.URLs, jp.jwks.Client.Timeout, jp.jwks.TTL
	}
	return s, nil
}

// LocalJWKS renders the local key as a one-key JWKS document whose "alg"
// pins the policy's algorithm.
func (s *JWTSpec) LocalJWKS() (string, error) {
	doc, err := jose.LocalJWKS(s.alg, s.localKey)
	if err != nil {
		return "", fieldWrap("textKey", err)
	}
	return doc, nil
}
