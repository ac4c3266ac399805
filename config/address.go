package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// parseAddress parses protocol://host:port[/path]. The port defaults to 80
// for http and 443 for https.
func parseAddress(raw string) (Address, error) {
	a := Address{Raw: raw}
	if raw == "" {
		return a, errors.New("required (protocol://host:port[/path])")
	}
	if !strings.Contains(raw, "://") {
		return a, fmt.Errorf("%q has no protocol (expected http://host:port or https://host:port)", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return a, fmt.Errorf("%q is not a valid URL: %v", raw, errors.Unwrap(err))
	}
	a.Protocol = strings.ToLower(u.Scheme)
	if a.Protocol != "http" && a.Protocol != "https" {
		return a, fmt.Errorf("protocol %q is not supported (expected http or https)", u.Scheme)
	}
	if u.User != nil {
		return a, fmt.Errorf("%q must not contain user information", raw)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return a, fmt.Errorf("%q must not contain a query or fragment", raw)
	}
	a.Host = u.Hostname()
	if a.Host == "" {
		return a, fmt.Errorf("%q has no host", raw)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return a, fmt.Errorf("port %q must be between 1 and 65535", p)
		}
		a.Port = n
	} else if strings.HasSuffix(u.Host, ":") {
		return a, fmt.Errorf("%q has an empty port", raw)
	} else if a.Protocol == "https" {
		a.Port = 443
	} else {
		a.Port = 80
	}
	p := u.EscapedPath()
	if p != "" && !strings.HasPrefix(p, "/") {
		return a, fmt.Errorf("path %q must start with '/'", p)
	}
	if strings.Contains(p, "//") {
		return a, fmt.Errorf("path %q must not contain empty segments", p)
	}
	a.Path = strings.TrimRight(p, "/")
	return a, nil
}

// basePathsClash reports whether two API base paths on one port overlap:
// equal, or one a segment-wise prefix of the other ("/cats", "/cats/dogs").
// "" is the root and clashes with everything.
func basePathsClash(a, b string) bool {
	if a == b || a == "" || b == "" {
		return true
	}
	if len(a) > len(b) {
		a, b = b, a
	}
	return strings.HasPrefix(b, a+"/")
}
