package policy

import (
	"context"

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
