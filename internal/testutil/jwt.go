package testutil

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
)

// HS256Token is a compact JWS of claims signed with secret (HS256), as
// jwt-validation-flex with signingMethod hmac and textKey secret accepts.
func HS256Token(t testing.TB, secret string, claims map[string]any) string {
	t.Helper()
	seg := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := seg(map[string]string{"alg": "HS256", "typ": "JWT"}) + "." + seg(claims)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
