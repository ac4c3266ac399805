package jose

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"
)

var (
	// ErrUnknownKid: no key of the set has the token's kid.
	ErrUnknownKid      = errors.New("no key with the token's kid")
	errJWKSUnavailable = errors.New("JWKS could not be fetched")
)

// jwkSet is the keys of one or more JWKS documents, by kid. Keys without a
// kid are tried in turn for tokens without one.
type jwkSet struct {
	byKid map[string]any
	anon  []any
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	K   string `json:"k"`
}

// parseJWKS decodes a JWKS document; keys of unknown type or for
// encryption are skipped.
func parseJWKS(b []byte, into *jwkSet) error {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("JWKS: %w", err)
	}
	for i, k := range doc.Keys {
		if k.Use == "enc" {
			continue
		}
		key, err := k.public()
		if err != nil {
			return fmt.Errorf("JWKS keys[%d] (kid %q): %w", i, k.Kid, err)
		}
		if key == nil {
			continue
		}
		if k.Kid == "" {
			into.anon = append(into.anon, key)
		} else {
			into.byKid[k.Kid] = key
		}
	}
	return nil
}

func (k jwk) public() (any, error) {
	switch k.Kty {
	case "RSA":
		n, err1 := b64.DecodeString(k.N)
		e, err2 := b64.DecodeString(k.E)
		if err := errors.Join(err1, err2); err != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return nil, fmt.Errorf("bad RSA n/e")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
	case "EC":
		var c elliptic.Curve
		switch k.Crv {
		case "P-256":
			c = elliptic.P256()
		case "P-384":
			c = elliptic.P384()
		case "P-521":
			c = elliptic.P521()
		default:
			return nil, fmt.Errorf("unsupported curve %q", k.Crv)
		}
		x, err1 := b64.DecodeString(k.X)
		y, err2 := b64.DecodeString(k.Y)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("bad EC x/y")
		}
		pub := &ecdsa.PublicKey{Curve: c, X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
		if !c.IsOnCurve(pub.X, pub.Y) { //nolint:staticcheck // the point check is what we want here
			return nil, fmt.Errorf("EC point not on curve")
		}
		return pub, nil
	case "oct":
		s, err := b64.DecodeString(k.K)
		if err != nil {
			return nil, fmt.Errorf("bad oct k")
		}
		return s, nil
	}
	return nil, nil
}

// JWKS fetches JWKS documents and keeps them for ttl. Once keys are
// cached no request waits on the JWKS server: an expired set is refreshed
// in the background while requests keep using it, and a failed refresh is
// retried with exponential backoff (1s, 2s, 4s, ... up to ttl) — what Flex
// does. Only the very first fetch is synchronous; while the server stays
// unreachable requests fail fast (503) between backed-off attempts.
//
// A token naming an unknown kid (key rotation) triggers one synchronous
// refetch, then at most one per refetchEvery, so a flood of made-up kids
// cannot hammer the JWKS server.
type JWKS struct {
	URLs         []string
	TTL          time.Duration
	RefetchEvery time.Duration
	Client       *http.Client
	// Log receives failed fetches; nil is slog.Default().
	Log *slog.Logger

	fetchMu sync.Mutex // serialises fetches

	mu          sync.Mutex
	set         *jwkSet
	nextRefresh time.Time // when the cached set is due (or a retry after failure)
	failures    int
	refreshing  bool
	lastRefetch time.Time // last unknown-kid refetch
}

// backoff is 1s, 2s, 4s, ... capped at the TTL (but never under 1s).
func (c *JWKS) backoff() time.Duration {
	d := time.Second << min(c.failures-1, 16)
	if limit := max(c.TTL, time.Second); d > limit {
		d = limit
	}
	return d
}

// fetchNow fetches synchronously (one fetch at a time) and records the
// outcome. Without force, a set another caller fetched while this one
// waited is used as is.
func (c *JWKS) fetchNow(ctx context.Context, force bool) error {
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	if !force {
		c.mu.Lock()
		fresh := c.set != nil && time.Now().Before(c.nextRefresh)
		c.mu.Unlock()
		if fresh {
			return nil
		}
	}
	set, err := c.refresh(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.failures++
		c.nextRefresh = time.Now().Add(c.backoff())
		return err
	}
	c.set, c.failures, c.nextRefresh = set, 0, time.Now().Add(c.TTL)
	return nil
}

func (c *JWKS) Lookup(ctx context.Context, kid string) ([]any, error) {
	c.mu.Lock()
	now := time.Now()
	set := c.set
	due := !now.Before(c.nextRefresh)
	if set != nil && due && !c.refreshing {
		c.refreshing = true
		go func() {
			_ = c.fetchNow(context.Background(), true)
			c.mu.Lock()
			c.refreshing = false
			c.mu.Unlock()
		}()
	}
	c.mu.Unlock()

	if set == nil {
		if !due {
			return nil, fmt.Errorf("%w: retrying after an earlier failure", errJWKSUnavailable)
		}
		if err := c.fetchNow(ctx, false); err != nil {
			return nil, err
		}
	}
	if keys := c.find(kid); len(keys) > 0 {
		return keys, nil
	}
	c.mu.Lock()
	allowed := c.lastRefetch.IsZero() || now.Sub(c.lastRefetch) >= c.RefetchEvery
	if allowed {
		c.lastRefetch = now
	}
	c.mu.Unlock()
	if allowed && c.fetchNow(ctx, true) == nil {
		if keys := c.find(kid); len(keys) > 0 {
			return keys, nil
		}
	}
	return nil, ErrUnknownKid
}

func (c *JWKS) find(kid string) []any {
	c.mu.Lock()
	set := c.set
	c.mu.Unlock()
	if set == nil {
		return nil
	}
	if kid == "" {
		keys := append([]any(nil), set.anon...)
		for _, k := range set.byKid {
			keys = append(keys, k)
		}
		return keys
	}
	if k, ok := set.byKid[kid]; ok {
		return []any{k}
	}
	return nil
}

// refresh fetches every URL; it succeeds when at least one answered.
func (c *JWKS) refresh(ctx context.Context) (*jwkSet, error) {
	set := &jwkSet{byKid: map[string]any{}}
	var errs []error
	for _, u := range c.URLs {
		if err := c.fetch(ctx, u, set); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == len(c.URLs) {
		err := fmt.Errorf("%w: %w", errJWKSUnavailable, errors.Join(errs...))
		if c.Log != nil {
			c.Log.Warn("JWKS refresh failed; keeping previous keys", "err", err)
		}
		return nil, err
	}
	return set, nil
}

func (c *JWKS) fetch(ctx context.Context, url string, into *jwkSet) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	res, err := c.Client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, res.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if err := parseJWKS(b, into); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// parseTextKey reads a local key: the HMAC secret itself, or a PEM public
// key or certificate (Flex also accepts the base64 body without the
// BEGIN/END lines).
func ParseTextKey(method, text string) (any, error) {
	if method == "hmac" {
		if text == "" {
			return nil, errors.New("required for hmac")
		}
		return []byte(text), nil
	}
	t := strings.TrimSpace(text)
	if !strings.Contains(t, "-----BEGIN") {
		t = "-----BEGIN PUBLIC KEY-----\n" + t + "\n-----END PUBLIC KEY-----\n"
	}
	blk, _ := pem.Decode([]byte(t))
	if blk == nil {
		return nil, errors.New("no PEM public key found")
	}
	var pub any
	var err error
	switch blk.Type {
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(blk.Bytes); err == nil {
			pub = cert.PublicKey
		}
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(blk.Bytes)
	default:
		pub, err = x509.ParsePKIXPublicKey(blk.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	switch pub.(type) {
	case *rsa.PublicKey:
		if method != "rsa" && method != "ps" {
			return nil, fmt.Errorf("an RSA key does not fit signingMethod %q", method)
		}
	case *ecdsa.PublicKey:
		if method != "es" {
			return nil, fmt.Errorf("an EC key does not fit signingMethod %q", method)
		}
	default:
		return nil, fmt.Errorf("unsupported key type %T", pub)
	}
	return pub, nil
}

// LocalJWKS renders the local key as a one-key JWKS whose "alg" pins the
// policy's algorithm.
func LocalJWKS(alg string, key any) (string, error) {
	k := map[string]string{"alg": alg, "use": "sig", "kid": "flexgw"}
	switch pub := key.(type) {
	case []byte:
		k["kty"], k["k"] = "oct", b64.EncodeToString(pub)
	case *rsa.PublicKey:
		k["kty"], k["n"], k["e"] = "RSA", b64.EncodeToString(pub.N.Bytes()), b64.EncodeToString(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		crv, size := map[int]string{256: "P-256", 384: "P-384", 521: "P-521"}[pub.Curve.Params().BitSize], (pub.Curve.Params().BitSize+7)/8
		x, y := make([]byte, size), make([]byte, size)
		pub.X.FillBytes(x)
		pub.Y.FillBytes(y)
		k["kty"], k["crv"], k["x"], k["y"] = "EC", crv, b64.EncodeToString(x), b64.EncodeToString(y)
	default:
		return "", fmt.Errorf("unsupported key %T", key)
	}
	b, err := json.Marshal(map[string]any{"keys": []any{k}})
	return string(b), err
}
