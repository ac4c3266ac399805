package policy

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/testutil"
)

func hs256(t *testing.T, secret string, claims map[string]any) string {
	return testutil.HS256Token(t, secret, claims)
}

// TestJWTVerifiedCache: a token whose signature verified is not verified
// again, but its time claims still are on every request (an expired
// cached token is refused), and tokens that fail verification are never
// cached.
func TestJWTVerifiedCache(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	jp, err := parseJWT(json.RawMessage(`{"signingMethod":"hmac","textKey":"`+secret+`"}`), true)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	jp.now = func() time.Time { return now }
	ctx := context.Background()
	req, _ := http.NewRequest("GET", "http://gw/", nil)
	tok := hs256(t, secret, map[string]any{"sub": "alice", "exp": now.Unix() + 60})

	claims, err := jp.verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jp.checkClaims(req, claims); err != nil {
		t.Fatal(err)
	}
	// With a different key the token could no longer verify: served from
	// the cache, it still does (the signature is not checked again).
	jp.localKey = []byte("another key, another key, 123456")
	if _, err := jp.verify(ctx, tok); err != nil {
		t.Fatalf("cached token verified again: %v", err)
	}
	// A token signed with another secret is refused and not remembered.
	forged := hs256(t, "not the secret, not the secret!!", map[string]any{"sub": "mallory", "exp": now.Unix() + 60})
	for i := 0; i < 2; i++ {
		if _, err := jp.verify(ctx, forged); err == nil {
			t.Fatal("forged token verified")
		}
	}
	if _, ok := jp.verified.get(forged, now); ok {
		t.Fatal("forged token cached")
	}
	// Past exp the cached entry is gone and the claims check refuses it.
	now = now.Add(time.Hour) // past exp and any clock skew allowance
	jp.localKey = []byte(secret)
	claims, err = jp.verify(ctx, tok)
	if err == nil {
		_, err = jp.checkClaims(req, claims)
	}
	if err == nil {
		t.Fatal("expired token accepted")
	}
}
