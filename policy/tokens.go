package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// What the bearer-token policies (oauth2-token-introspection-flex,
// openidconnect-access-token-enforcement-flex) share: the one RFC 7662
// client, the token cache and the scope rule. Each policy keeps only what
// differs: how it finds the endpoint, how it authenticates to it, and how
// it reads the answer.

// introspectionClient asks an RFC 7662 introspection endpoint about a
// token. The gateway authenticates itself (RFC 7662 §2.1) with an
// Authorization header value, with client credentials in the body
// (client_secret_post, RFC 6749 §2.3.1), or not at all.
type introspectionClient struct {
	http                   *http.Client
	timeout                time.Duration
	authorization          string
	clientID, clientSecret string
}

// maxIntrospectionResponse bounds what is read from the endpoint.
const maxIntrospectionResponse = 1 << 20

// errIntrospectionUnreachable marks a failure before any answer came back:
// the callers tell "the endpoint is down" (Flex's OIDC policy answers 401)
// from "the endpoint answered badly" (500).
var errIntrospectionUnreachable = errors.New("introspection endpoint unreachable")

// introspect posts token to endpoint and decodes the answer into v. An
// answer counts only with status 200, a JSON media type, at most
// maxIntrospectionResponse bytes, and a boolean "active" member (RFC 7662
// §2.2); anything else is an error.
func (ic *introspectionClient) introspect(ctx context.Context, endpoint, token string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, ic.timeout)
	defer cancel()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	if ic.clientID != "" {
		form.Set("client_id", ic.clientID)
		form.Set("client_secret", ic.clientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("introspection endpoint: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if ic.authorization != "" {
		req.Header.Set("Authorization", ic.authorization)
	}
	res, err := ic.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", errIntrospectionUnreachable, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxIntrospectionResponse+1))
	if err != nil || len(body) > maxIntrospectionResponse {
		return errors.New("introspection endpoint: unreadable or oversized response")
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("introspection endpoint: status %d", res.StatusCode)
	}
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt != "application/json" {
		return fmt.Errorf("introspection endpoint: content type %q, want application/json", mt)
	}
	var active struct {
		Active *bool `json:"active"`
	}
	if err := json.Unmarshal(body, &active); err != nil {
		return fmt.Errorf("introspection endpoint: %w", err)
	}
	if active.Active == nil {
		return errors.New("introspection endpoint: no boolean active member (RFC 7662 §2.2)")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("introspection endpoint: %w", err)
	}
	return nil
}

// scopesSatisfied is the scope rule of every bearer-token policy: with
// scopes configured, the token must carry all of them (AND), or at least
// one (OR, anyOf set).
func scopesSatisfied(want []string, anyOf bool, got map[string]bool) bool {
	if len(want) == 0 {
		return true
	}
	for _, s := range want {
		if got[s] && anyOf {
			return true
		}
		if !got[s] && !anyOf {
			return false
		}
	}
	return !anyOf
}

// tokenCache keeps validated tokens by SHA-256 (the tokens themselves are
// not held) until a time each entry names, evicting first in, first out
// past max entries; max 0 caches nothing.
type tokenCache[V any] struct {
	mu    sync.Mutex
	max   int
	m     map[[32]byte]cachedToken[V]
	order [][32]byte
}

type cachedToken[V any] struct {
	v     V
	until time.Time
}

func newTokenCache[V any](max int) *tokenCache[V] {
	return &tokenCache[V]{max: max, m: map[[32]byte]cachedToken[V]{}}
}

func (c *tokenCache[V]) get(k [32]byte) (V, bool) {
	var zero V
	if c.max == 0 {
		return zero, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return zero, false
	}
	if !time.Now().Before(e.until) {
		delete(c.m, k)
		return zero, false
	}
	return e.v, true
}

func (c *tokenCache[V]) put(k [32]byte, v V, until time.Time) {
	if c.max == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok {
		c.order = append(c.order, k)
	}
	c.m[k] = cachedToken[V]{v, until}
	for len(c.m) > c.max && len(c.order) > 0 {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	if len(c.order) > 2*c.max+16 {
		live := c.order[:0]
		for _, k := range c.order {
			if _, ok := c.m[k]; ok {
				live = append(live, k)
			}
		}
		c.order = live
	}
}
