package policy_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/policy"
)

var b64 = base64.RawURLEncoding

func seg(v any) string {
	b, _ := json.Marshal(v)
	return b64.EncodeToString(b)
}

// signJWT builds a compact JWS; key is *rsa.PrivateKey, *ecdsa.PrivateKey or []byte.
func signJWT(t *testing.T, alg, kid string, claims map[string]any, key any) string {
	t.Helper()
	hdr := map[string]any{"alg": alg, "typ": "JWT"}
	if kid != "" {
		hdr["kid"] = kid
	}
	input := seg(hdr) + "." + seg(claims)
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	var err error
	switch alg {
	case "RS256":
		sig, err = rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, sum[:])
	case "PS256":
		sig, err = rsa.SignPSS(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, sum[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES256":
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, key.(*ecdsa.PrivateKey), sum[:])
		if err == nil {
			sig = make([]byte, 64)
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
		}
	case "HS256":
		m := hmac.New(sha256.New, key.([]byte))
		m.Write([]byte(input))
		sig = m.Sum(nil)
	case "none":
	default:
		t.Fatalf("alg %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64.EncodeToString(sig)
}

var (
	rsaOnce sync.Once
	rsaKey1 *rsa.PrivateKey
	rsaKey2 *rsa.PrivateKey
)

func rsaKeys(t testing.TB) (*rsa.PrivateKey, *rsa.PrivateKey) {
	rsaOnce.Do(func() {
		var err error
		if rsaKey1, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
		if rsaKey2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	})
	return rsaKey1, rsaKey2
}

func pubPEM(t *testing.T, pub any) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func goodClaims() map[string]any {
	now := time.Now().Unix()
	return map[string]any{"sub": "alice", "iss": "https://issuer.example", "aud": "orders", "exp": now + 300, "nbf": now - 10, "scope": "read", "client_id": "app-1"}
}

func with(c map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for kk, vv := range c {
		out[kk] = vv
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

func TestJWTLocalRSAAndAttacks(t *testing.T) {
	k1, k2 := rsaKeys(t)
	pemKey := pubPEM(t, &k1.PublicKey)
	up := policytest.NewUpstream(t)
	cfg := map[string]any{
		"signingMethod": "rsa", "signingKeyLength": 256, "jwtKeyOrigin": "text", "textKey": pemKey,
		"validateAudClaim": true, "mandatoryAudClaim": true, "supportedAudiences": "orders,billing",
		"mandatoryExpClaim": true, "issuer": "https://issuer.example", "clockSkewSeconds": 0,
		"claimsToHeaders":       []map[string]string{{"claim": "sub", "header": "X-User"}},
		"mandatoryCustomClaims": []map[string]string{{"key": "scope", "value": "read"}},
	}
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("jwt-validation-flex", cfg))

	r := g.Get(t, "/", append(bearer(signJWT(t, "RS256", "", goodClaims(), k1)), "X-User", "mallory")...)
	policytest.WantStatus(t, r, http.StatusOK)
	if got := up.LastHeader().Get("X-User"); got != "alice" {
		t.Fatalf("forwarded X-User %q, want alice (client value must be replaced)", got)
	}

	now := time.Now().Unix()
	good := signJWT(t, "RS256", "", goodClaims(), k1)
	tampered := good[:len(good)-4] + "AAAA"
	if tampered == good {
		tampered = good[:len(good)-4] + "BBBB"
	}
	attacks := map[string]string{
		"alg none":           signJWT(t, "none", "", goodClaims(), nil),
		"RS256 to HS256":     signJWT(t, "HS256", "", goodClaims(), []byte(pemKey)),
		"expired":            signJWT(t, "RS256", "", with(goodClaims(), "exp", now-120), k1),
		"not yet valid":      signJWT(t, "RS256", "", with(goodClaims(), "nbf", now+120), k1),
		"wrong aud":          signJWT(t, "RS256", "", with(goodClaims(), "aud", "other"), k1),
		"missing aud":        signJWT(t, "RS256", "", with(goodClaims(), "aud", nil), k1),
		"wrong iss":          signJWT(t, "RS256", "", with(goodClaims(), "iss", "https://evil.example"), k1),
		"missing exp":        signJWT(t, "RS256", "", with(goodClaims(), "exp", nil), k1),
		"wrong custom claim": signJWT(t, "RS256", "", with(goodClaims(), "scope", "admin"), k1),
		"other key":          signJWT(t, "RS256", "", goodClaims(), k2),
		"tampered signature": tampered,
		"tampered payload":   signJWT(t, "RS256", "", goodClaims(), k1)[:10] + seg(with(goodClaims(), "sub", "root"))[10:] + "." + "x",
		"garbage":            "not.a.jwt",
		"two parts":          "abc.def",
		"PS256 not allowed":  signJWT(t, "PS256", "", goodClaims(), k1),
	}
	for name, tok := range attacks {
		r := g.Get(t, "/", bearer(tok)...)
		if r.Status != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401 (%s)", name, r.Status, r.Body)
			continue
		}
		policytest.WantErrorBody(t, r, "jwt-validation-flex")
		if r.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", name)
		}
	}
	if up.Hits() != 1 {
		t.Fatalf("upstream saw %d requests, want only the valid one", up.Hits())
	}
	policytest.WantStatus(t, g.Get(t, "/"), http.StatusBadRequest)
}

func TestJWTHMACAndES256AndPS256(t *testing.T) {
	up := policytest.NewUpstream(t)
	secret := []byte("0123456789abcdef0123456789abcdef")
	hs := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("jwt-validation-flex", map[string]any{"signingMethod": "hmac", "textKey": string(secret)}))
	policytest.WantStatus(t, hs.Get(t, "/", bearer(signJWT(t, "HS256", "", goodClaims(), secret))...), http.StatusOK)
	policytest.WantStatus(t, hs.Get(t, "/", bearer(signJWT(t, "HS256", "", goodClaims(), []byte("wrong")))...), http.StatusUnauthorized)

	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	es := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("jwt-validation-flex", map[string]any{"signingMethod": "es", "textKey": pubPEM(t, &ek.PublicKey)}))
	policytest.WantStatus(t, es.Get(t, "/", bearer(signJWT(t, "ES256", "", goodClaims(), ek))...), http.StatusOK)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	policytest.WantStatus(t, es.Get(t, "/", bearer(signJWT(t, "ES256", "", goodClaims(), other))...), http.StatusUnauthorized)

	k1, _ := rsaKeys(t)
	ps := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("jwt-validation-flex", map[string]any{"signingMethod": "ps", "textKey": pubPEM(t, &k1.PublicKey)}))
	policytest.WantStatus(t, ps.Get(t, "/", bearer(signJWT(t, "PS256", "", goodClaims(), k1))...), http.StatusOK)
	policytest.WantStatus(t, ps.Get(t, "/", bearer(signJWT(t, "RS256", "", goodClaims(), k1))...), http.StatusUnauthorized)
}

// jwksServer serves a JWKS that the test can rotate.
type jwksServer struct {
	*httptest.Server
	mu    sync.Mutex
	doc   []byte
	hits  atomic.Int32
	fails atomic.Bool
}

func rsaJWK(kid string, pub *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64.EncodeToString(pub.N.Bytes()), "e": b64.EncodeToString(big.NewInt(int64(pub.E)).Bytes())}
}

func newJWKSServer(t *testing.T, keys ...map[string]any) *jwksServer {
	s := &jwksServer{}
	s.set(keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if s.fails.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(keys ...map[string]any) {
	b, _ := json.Marshal(map[string]any{"keys": keys})
	s.mu.Lock()
	s.doc = b
	s.mu.Unlock()
}

func TestJWTJWKSRotationAndUnknownKid(t *testing.T) {
	k1, k2 := rsaKeys(t)
	js := newJWKSServer(t, rsaJWK("k1", &k1.PublicKey))
	up := policytest.NewUpstream(t)
	cfg := map[string]any{"signingMethod": "rsa", "jwtKeyOrigin": "jwks", "jwksUrl": js.URL, "jwksRefetchIntervalSeconds": 3600}
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("jwt-validation-flex", cfg))

	policytest.WantStatus(t, g.Get(t, "/", bearer(signJWT(t, "RS256", "k1", goodClaims(), k1))...), http.StatusOK)
	policytest.WantStatus(t, g.Get(t, "/", bearer(signJWT(t, "RS256", "k1", goodClaims(), k1))...), http.StatusOK)
	if n := js.hits.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1 (cached)", n)
	}

	// The issuer rotates to k2: the unknown kid triggers one refetch.
	js.set(rsaJWK("k1", &k1.PublicKey), rsaJWK("k2", &k2.PublicKey))
	policytest.WantStatus(t, g.Get(t, "/", bearer(signJWT(t, "RS256", "k2", goodClaims(), k2))...), http.StatusOK)
	if n := js.hits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times after rotation, want 2", n)
	}

	// Made-up kids are rejected and do not cause more fetches (rate-limited).
	for i := 0; i < 5; i++ {
		r := g.Get(t, "/", bearer(signJWT(t, "RS256", "nope", goodClaims(), k2))...)
		policytest.WantStatus(t, r, http.StatusUnauthorized)
	}
	if n := js.hits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, unknown kids must not refetch within the interval", n)
	}
	// A token signed by k2 but claiming kid k1 fails verification.
	policytest.WantStatus(t, g.Get(t, "/", bearer(signJWT(t, "RS256", "k1", goodClaims(), k2))...), http.StatusUnauthorized)
}

func TestJWTJWKSUnavailable(t *testing.T) {
	k1, _ := rsaKeys(t)
	js := newJWKSServer(t, rsaJWK("k1", &k1.PublicKey))
	js.fails.Store(true)
	up := policytest.NewUpstream(t)
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("jwt-validation-flex", map[string]any{"jwtKeyOrigin": "jwks", "jwksUrl": js.URL}))
	r := g.Get(t, "/", bearer(signJWT(t, "RS256", "k1", goodClaims(), k1))...)
	policytest.WantStatus(t, r, http.StatusServiceUnavailable)
	policytest.WantErrorBody(t, r, "jwt-validation-flex")
}

func TestJWTCustomExpressionOrigin(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	up := policytest.NewUpstream(t)
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("jwt-validation-flex", map[string]any{
		"signingMethod": "hmac", "textKey": string(secret), "jwtOrigin": "customExpression", "jwtExpression": "#[attributes.headers['x-token']]",
		"validateCustomClaim":   true,
		"mandatoryCustomClaims": []map[string]string{{"key": "sub", "value": "#[vars.claimSet.sub == 'alice']"}},
	}))
	policytest.WantStatus(t, g.Get(t, "/", "X-Token", signJWT(t, "HS256", "", goodClaims(), secret)), http.StatusOK)
	policytest.WantStatus(t, g.Get(t, "/", "X-Token", signJWT(t, "HS256", "", with(goodClaims(), "sub", "bob"), secret)), http.StatusUnauthorized)
	policytest.WantStatus(t, g.Get(t, "/", bearer(signJWT(t, "HS256", "", goodClaims(), secret))...), http.StatusBadRequest)
}

func TestJWTValidation(t *testing.T) {
	for _, tc := range []struct{ cfg, field string }{
		{`{"signingMethod":"none"}`, "config.signingMethod"},
		{`{"signingMethod":"rsa","textKey":"garbage"}`, "config.textKey"},
		{`{"signingMethod":"hmac","signingKeyLength":128,"textKey":"x"}`, "config.signingKeyLength"},
		{`{"jwtKeyOrigin":"jwks"}`, "config.jwksUrl"},
		{`{"jwtKeyOrigin":"jwks","jwksUrl":"ftp://x"}`, "config.jwksUrl"},
		{`{"signingMethod":"hmac","textKey":"x","validateAudClaim":true}`, "config.supportedAudiences"},
		{`{"signingMethod":"hmac","textKey":"x","mandatoryCustomClaims":[{"value":"x"}]}`, "config.mandatoryCustomClaims[0].key"},
	} {
		err := policy.Check(policytest.Policy("jwt-validation-flex", tc.cfg))
		if err == nil || !contains(err.Error(), tc.field) {
			t.Errorf("%s: error %v, want one naming %s", tc.cfg, err, tc.field)
		}
	}
}

// TestJWTNumericDates attacks the exp, nbf and iat parsing with signed
// tokens: RFC 7519 NumericDates are JSON numbers, possibly fractional, and
// a value converted to int64 without a range check overflows (nbf 1e300
// was accepted as a date in the far past).
func TestJWTNumericDates(t *testing.T) {
	up := policytest.NewUpstream(t)
	secret := []byte("0123456789abcdef0123456789abcdef")
	gw := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("jwt-validation-flex", map[string]any{"signingMethod": "hmac", "textKey": string(secret)}))
	now := time.Now().Unix()
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	num := func(n int64) json.RawMessage { return raw(fmt.Sprint(n)) }
	cases := []struct {
		name  string
		claim string
		value any // nil removes the claim
		want  int
	}{
		{"nbf 1e300 overflows int64", "nbf", raw("1e300"), http.StatusUnauthorized},
		{"nbf 1e19 just past int64", "nbf", raw("1e19"), http.StatusUnauthorized},
		{"nbf -1e300", "nbf", raw("-1e300"), http.StatusUnauthorized},
		{"nbf negative", "nbf", raw("-1"), http.StatusUnauthorized},
		{"nbf a string", "nbf", raw(`"0"`), http.StatusUnauthorized},
		{"nbf null", "nbf", raw("null"), http.StatusUnauthorized},
		{"nbf true", "nbf", raw("true"), http.StatusUnauthorized},
		{"nbf an object", "nbf", raw(`{"n":1}`), http.StatusUnauthorized},
		{"nbf fractional in the past", "nbf", raw(fmt.Sprintf("%d.25", now-10)), http.StatusOK},
		{"nbf fractional in the future", "nbf", raw(fmt.Sprintf("%d.5", now+3600)), http.StatusUnauthorized},
		{"nbf zero", "nbf", raw("0"), http.StatusOK},
		{"nbf year 9999 exactly", "nbf", num(253402300799), http.StatusUnauthorized},
		{"exp 1e300 never expires", "exp", raw("1e300"), http.StatusUnauthorized},
		{"exp past year 9999", "exp", num(253402300800), http.StatusUnauthorized},
		{"exp year 9999", "exp", num(253402300799), http.StatusOK},
		{"exp negative", "exp", raw("-5"), http.StatusUnauthorized},
		{"exp fractional in the future", "exp", raw(fmt.Sprintf("%d.75", now+300)), http.StatusOK},
		{"exp fractional in the past", "exp", raw(fmt.Sprintf("%d.75", now-3600)), http.StatusUnauthorized},
		{"exp a numeric string", "exp", raw(fmt.Sprintf(`"%d"`, now+300)), http.StatusUnauthorized},
		{"exp 1e400 not even a float64", "exp", raw("1e400"), http.StatusUnauthorized},
		{"iat 1e300", "iat", raw("1e300"), http.StatusUnauthorized},
		{"iat a string", "iat", raw(`"yesterday"`), http.StatusUnauthorized},
		{"iat negative", "iat", raw("-1"), http.StatusUnauthorized},
		{"iat fractional", "iat", raw(fmt.Sprintf("%d.5", now-5)), http.StatusOK},
		{"iat now", "iat", num(now), http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			claims := goodClaims()
			claims[c.claim] = c.value
			policytest.WantStatus(t, gw.Get(t, "/", bearer(signJWT(t, "HS256", "", claims, secret))...), c.want)
		})
	}
}
