package policy

import "net/http"

// UpstreamRequest is a request as the data plane writes it to one
// upstream endpoint: after the route's rewrites, with the endpoint's Host.
// A policy that must see the request exactly as it leaves (AWS request
// signing) reads it here instead of in the chain, where the path is
// still the client's.
type UpstreamRequest struct {
	Method string
	// Scheme is http or https (the service's protocol).
	Scheme string
	// Host is the Host (or :authority) sent: the endpoint's.
	Host string
	// Path is the escaped upstream path, RawQuery the query, as sent.
	Path, RawQuery string
	// Header holds the headers sent exactly as they are; those the data
	// plane sets itself afterwards (X-Forwarded-*, X-Request-Id, trace
	// propagation) are not in it.
	Header http.Header
	// ContentLength is the body's length, -1 when it is sent chunked.
	ContentLength int64
}

// DispatchHook runs once per upstream attempt, just before the request is
// written; the headers it returns are set on that request, replacing any
// of the same name.
type DispatchHook func(up *UpstreamRequest) http.Header

// Dispatcher is what a data plane's request state implements to run
// dispatch hooks; the request's context answers DispatcherKey with it.
type Dispatcher interface {
	OnDispatch(DispatchHook)
}

// DispatcherKey is the context key of the request's Dispatcher.
type DispatcherKey struct{}

// OnDispatch registers hook for r's upstream attempts. It reports false
// when nothing dispatches r here (the agent's ext_authz service, where
// Envoy sends the request itself).
func OnDispatch(r *http.Request, hook DispatchHook) bool {
	d, ok := r.Context().Value(DispatcherKey{}).(Dispatcher)
	if !ok {
		return false
	}
	d.OnDispatch(hook)
	return true
}
