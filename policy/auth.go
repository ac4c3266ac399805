package policy

import (
	"context"
	"net/http"

	"github.com/flexgw/flexgw/policy/internal/dw"
)

// Authentication is what an authentication policy learned about the
// caller; later policies (rate-limit keys, logging) read it, and so do
// expressions (authentication.*, vars.claimSet).
type Authentication = dw.Authentication

// WithAuthentication returns ctx carrying a.
func WithAuthentication(ctx context.Context, a *Authentication) context.Context {
	return dw.WithAuthentication(ctx, a)
}

// AuthenticationFrom returns the request's authentication, or nil.
func AuthenticationFrom(ctx context.Context) *Authentication { return dw.AuthenticationFrom(ctx) }

// AuthKey is the context key a request's Authentication is found under;
// per-request state that answers it with an *AuthSlot spares each
// authenticated request a context and a request copy (see dw.AuthKey).
type AuthKey = dw.AuthKey

// AuthSlot holds one request's Authentication inside per-request state.
type AuthSlot = dw.AuthSlot

// authenticate records a as r's authentication (see dw.Authenticate).
func authenticate(r *http.Request, a Authentication) (*http.Request, *Authentication) {
	return dw.Authenticate(r, a)
}
