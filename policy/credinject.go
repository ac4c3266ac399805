package policy

import (
	"fmt"
	"net/http"

	"github.com/flexgw/flexgw/ir"
	"golang.org/x/net/http/httpguts"
)

// This file holds what the three credential-injection policies share:
// setting one upstream request header, replacing the client's value or
// keeping it (Flex's `overwrite`), on both data planes.

// injectHeader sets name to value on the upstream request. With overwrite
// false a value the client sent is kept (Flex).
func injectHeader(h http.Header, name, value string, overwrite bool) {
	if !overwrite && len(h.Values(name)) > 0 {
		return
	}
	h.Set(name, value)
}

// checkHeaderName validates an optional custom header name field.
func checkHeaderName(field, name string) error {
	if name != "" && !httpguts.ValidHeaderFieldName(name) {
		return fieldErr(field, "%q is not a valid header name", name)
	}
	return nil
}

// checkHeaderValue rejects a credential that cannot travel in a header
// (CR, LF, NUL): it would split the upstream request.
func checkHeaderValue(field, v string) error {
	if !httpguts.ValidHeaderFieldValue(v) {
		return fieldErr(field, "contains characters not allowed in an HTTP header value")
	}
	return nil
}

// boolOr returns *b, or def when the field was not set.
func boolOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

// InjectedCredential is one upstream request header a static
// credential-injection policy sets.
type InjectedCredential struct {
	Header, Value string
	// Overwrite replaces a value the client sent; false keeps it.
	Overwrite bool
}

// CredentialInjectionsOf validates the configuration of a static
// credential-injection binding (basic auth or API key; the OAuth2 one
// fetches its token at run time) and returns the headers it sets.
func CredentialInjectionsOf(p *ir.Policy) ([]InjectedCredential, error) {
	var cs []*compiledInjection
	switch p.Name {
	case credInjectBasic{}.Name():
		c, err := parseCredInjectBasic(p.Config)
		if err != nil {
			return nil, err
		}
		cs = []*compiledInjection{c}
	case credInjectAPIKey{}.Name():
		var err error
		if cs, err = parseCredInjectAPIKey(p.Config); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("policy %q injects no static credential", p.Name)
	}
	out := make([]InjectedCredential, 0, len(cs))
	for _, c := range cs {
		out = append(out, InjectedCredential{Header: c.header, Value: c.value, Overwrite: c.overwrite})
	}
	return out, nil
}
