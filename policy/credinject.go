package policy

import (
	"net/http"
	"strings"

	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
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

// injectMutation is injectHeader as an Envoy header_mutation entry.
func injectMutation(name, value string, overwrite bool) *mutationv3.HeaderMutation {
	action := corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	if !overwrite {
		action = corev3.HeaderValueOption_ADD_IF_ABSENT
	}
	return &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Append{Append: &corev3.HeaderValueOption{
		Header: &corev3.HeaderValue{Key: strings.ToLower(name), Value: value}, AppendAction: action,
	}}}
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
