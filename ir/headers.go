package ir

import "net/http"

// HeaderFilters are a route's header changes (Gateway API's
// RequestHeaderModifier and ResponseHeaderModifier filters): made on the
// request as it leaves for the upstream and on the response as it
// returns, after every policy, as Envoy's route-level
// request_headers_to_add/remove and response_headers_to_add/remove are.
type HeaderFilters struct {
	Request  *HeaderMutation `json:"request,omitempty"`
	Response *HeaderMutation `json:"response,omitempty"`
}

// HeaderMutation removes, sets (replacing any value) and adds (keeping
// any value) headers, in that order (Envoy's).
type HeaderMutation struct {
	Set    []HeaderValue `json:"set,omitempty"`
	Add    []HeaderValue `json:"add,omitempty"`
	Remove []string      `json:"remove,omitempty"`
}

// HeaderValue is one header to set or add.
type HeaderValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Apply makes the changes on h; names and values were checked when the
// configuration was decoded.
func (m *HeaderMutation) Apply(h http.Header) {
	if m == nil {
		return
	}
	for _, n := range m.Remove {
		h.Del(n)
	}
	for _, v := range m.Set {
		h.Set(v.Name, v.Value)
	}
	for _, v := range m.Add {
		h.Add(v.Name, v.Value)
	}
}
