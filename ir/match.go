package ir

import (
	"net/http"
	"strings"
)

// These helpers define request matching and the upstream path once, so the
// built-in data plane and the Envoy translator cannot drift apart.

// StripBasePath returns path (without query) relative to an API's base path
// and whether the path is under it at a segment boundary: base "/orders"
// takes "/orders" and "/orders/1" but not "/ordersX". The relative path is
// "" when path equals the base path.
func StripBasePath(basePath, path string) (string, bool) {
	if basePath == "" || basePath == "/" {
		return path, true
	}
	if !strings.HasPrefix(path, basePath) {
		return "", false
	}
	rest := path[len(basePath):]
	if rest != "" && rest[0] != '/' {
		return "", false
	}
	return rest, true
}

// MatchPath is the value rule path regexes are matched against: the
// relative path, with "" (the base path itself) read as "/".
func MatchPath(rel string) string {
	if rel == "" {
		return "/"
	}
	return rel
}

// Matches reports whether every set field of the rule matches (AND).
// path is the MatchPath of the request (base path removed, no query);
// host is the Host header, with any :port ignored; headers are matched
// case-insensitively by name and pass when any value matches.
func (r *Rule) Matches(method, host, path string, h http.Header) bool {
	if r.Methods != nil && !r.Methods.MatchString(method) {
		return false
	}
	if r.Path != nil && !r.Path.MatchString(path) {
		return false
	}
	if r.Host != nil && !r.Host.MatchString(HostWithoutPort(host)) {
		return false
	}
	for _, hm := range r.Headers {
		ok := false
		for _, v := range h.Values(hm.Name) {
			if hm.Value.MatchString(v) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// Match returns the first matching rule of the route (OR across rules);
// rawQuery is the request's query, for the rules' query matches. A route
// without rules matches every request and returns a nil rule.
func (rt *Route) Match(method, host, path, rawQuery string, h http.Header) (*Rule, bool) {
	if len(rt.Rules) == 0 {
		return nil, true
	}
	for i := range rt.Rules {
		if rt.Rules[i].Matches(method, host, path, h) && rt.Rules[i].QueryMatches(rawQuery) {
			return &rt.Rules[i], true
		}
	}
	return nil, false
}

// DestinationPathFor is the destination path prepended for destination d.
func (rt *Route) DestinationPathFor(d Destination) string {
	if d.DestinationPath != "" {
		return d.DestinationPath
	}
	return rt.DestinationPath
}

// HostWithoutPort strips a ":port" suffix from a Host header value,
// keeping IPv6 literals intact ("[::1]:80" → "[::1]").
func HostWithoutPort(host string) string {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.LastIndexByte(host, ']') > i {
		return host
	}
	for _, c := range host[i+1:] {
		if c < '0' || c > '9' {
			return host
		}
	}
	return host[:i]
}

// RewritePath computes the upstream path (with query) for reqPath (the
// request path with query, as received):
//
//  1. the API base path is removed;
//  2. if the matched rule's path regex has capture groups, the path is the
//     concatenation of what they captured (Flex's rewrite: "/api(/.*)"
//     sends "/api/orders" upstream as "/orders");
//  3. the route's destination path and then the service address path are
//     prepended.
//
// The query string is kept unchanged. The result is never empty ("/").
func RewritePath(basePath string, rule *Rule, destPath, svcBasePath, reqPath string) string {
	path, query, hasQuery := strings.Cut(reqPath, "?")
	rest, ok := StripBasePath(basePath, path)
	if !ok {
		rest = path
	}
	var groups []int // capture group bounds in subject, when the rule has groups
	subject := MatchPath(rest)
	if rule != nil && rule.Path != nil && rule.Path.Re().NumSubexp() > 0 {
		if m := rule.Path.Re().FindStringSubmatchIndex(subject); m != nil {
			groups = m[2:]
		}
	}
	var b strings.Builder
	b.Grow(len(svcBasePath) + len(destPath) + len(rest) + len(query) + 2)
	b.WriteString(strings.TrimRight(svcBasePath, "/"))
	b.WriteString(strings.TrimRight(destPath, "/"))
	if groups == nil {
		if rest != "" && rest[0] != '/' {
			b.WriteByte('/')
		}
		b.WriteString(rest)
	} else {
		first := true
		for i := 0; i+1 < len(groups); i += 2 {
			if groups[i] < 0 || groups[i] == groups[i+1] {
				continue // group did not take part in the match, or is empty
			}
			part := subject[groups[i]:groups[i+1]]
			if first && part[0] != '/' {
				b.WriteByte('/')
			}
			first = false
			b.WriteString(part)
		}
	}
	if b.Len() == 0 {
		b.WriteByte('/')
	}
	if hasQuery && query != "" {
		b.WriteByte('?')
		b.WriteString(query)
	}
	return b.String()
}

// HostPattern is the regex for matching a full :authority header (which
// may carry a port) the way Rule.Matches matches the host, for data
// planes that cannot strip the port first (Envoy).
func HostPattern(r *Regexp) string {
	return "^(?:" + r.Source + ")(?::[0-9]+)?$"
}
