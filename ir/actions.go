package ir

import (
	"net/url"
	"strconv"
	"strings"
)

// Redirect makes a route answer with a redirect instead of forwarding
// (Gateway API's RequestRedirect filter, the route's `redirect`
// extension). The Location is the request's URL with the set parts
// replaced; both data planes build it the way Envoy's redirect action
// does, so they agree byte for byte.
type Redirect struct {
	// Scheme replaces the request's scheme ("http", "https"); "" keeps it.
	Scheme string `json:"scheme,omitempty"`
	// Host replaces the request's host; "" keeps the Host header's.
	Host string `json:"host,omitempty"`
	// Port, when set, is written after the host (the request's own port
	// dropped); 0 writes Host alone, or keeps the request's host and port
	// (dropping a port that was the request scheme's default when the
	// scheme changes).
	Port int `json:"port,omitempty"`
	// RewritePath computes the new path as forwarding does: Path in place
	// of the API base path, followed by what the matched rule's capture
	// groups took (or the rest of the path when it has none). False keeps
	// the request's path.
	RewritePath bool   `json:"rewritePath,omitempty"`
	Path        string `json:"path,omitempty"`
	// StatusCode is 301, 302, 303, 307 or 308.
	StatusCode int `json:"statusCode"`
}

// RedirectStatuses are the status codes a redirect may answer with (the
// ones Envoy's redirect action has).
var RedirectStatuses = []int{301, 302, 303, 307, 308}

// Location is the redirect target for a request to basePath's API:
// scheme is the request's ("http" or "https"), host its Host header,
// reqPath its path with query, rule the rule that matched.
func (rd *Redirect) Location(scheme, host, basePath string, rule *Rule, reqPath string) string {
	newScheme := scheme
	if rd.Scheme != "" {
		newScheme = rd.Scheme
	}
	h := rd.Host
	if h == "" {
		h = host
		if rd.Port != 0 || newScheme != scheme {
			if hp := HostWithoutPort(host); hp != host {
				port := host[len(hp):]
				if rd.Port != 0 || (scheme == "https" && port == ":443") || (scheme == "http" && port == ":80") {
					h = hp
				}
			}
		}
	}
	if rd.Port != 0 {
		h += ":" + strconv.Itoa(rd.Port)
	}
	p := reqPath
	if rd.RewritePath {
		p = RewritePath(basePath, rule, rd.Path, "", reqPath)
	}
	return newScheme + "://" + h + p
}

// Mirror is a service a route copies requests to.
type Mirror struct {
	// Service is the key (namespace/name) of a Service in the snapshot.
	Service string `json:"service"`
	// PerMillion is the share of requests copied, per million
	// (MirrorAll: every request).
	PerMillion uint32 `json:"perMillion"`
}

// MirrorAll is Mirror.PerMillion for a copy of every request.
const MirrorAll = 1_000_000

// DirectResponse makes a route answer by itself: Gateway API's 500 for a
// rule whose backends are all invalid, or the route's `directResponse`
// extension.
type DirectResponse struct {
	Status int    `json:"status"`
	Body   string `json:"body,omitempty"`
}

// QueryMatch requires a query parameter whose first value matches Value
// (Gateway API's query parameter matches; Envoy's query_parameters).
type QueryMatch struct {
	Name  string  `json:"name"`
	Value *Regexp `json:"value"`
}

// QueryMatches reports whether rawQuery satisfies every query match of
// the rule. A parameter's value is its first occurrence's, percent-
// decoded ('+' is not a space here, as in Envoy).
func (r *Rule) QueryMatches(rawQuery string) bool {
	for _, q := range r.Query {
		v, ok := QueryParam(rawQuery, q.Name)
		if !ok || !q.Value.MatchString(v) {
			return false
		}
	}
	return true
}

// QueryParam is the first value of the query parameter name in rawQuery.
func QueryParam(rawQuery, name string) (string, bool) {
	for rawQuery != "" {
		var kv string
		kv, rawQuery, _ = strings.Cut(rawQuery, "&")
		k, v, _ := strings.Cut(kv, "=")
		if dk, err := url.PathUnescape(k); err == nil {
			k = dk
		}
		if k != name {
			continue
		}
		if dv, err := url.PathUnescape(v); err == nil {
			v = dv
		}
		return v, true
	}
	return "", false
}
