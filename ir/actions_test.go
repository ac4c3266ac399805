package ir

import "testing"

func TestRedirectLocation(t *testing.T) {
	rule := &Rule{Path: MustRegexp("/old(/.*)?")}
	for _, tc := range []struct {
		rd                    Redirect
		scheme, host, reqPath string
		want                  string
	}{
		{Redirect{}, "http", "h:8080", "/old/a?x=1", "http://h:8080/old/a?x=1"},
		// A scheme change drops the request's port only when it was the
		// old scheme's default (Envoy's rule).
		{Redirect{Scheme: "https"}, "http", "h:80", "/p", "https://h/p"},
		{Redirect{Scheme: "https"}, "http", "h:8080", "/p", "https://h:8080/p"},
		{Redirect{Scheme: "http"}, "https", "h:443", "/p", "http://h/p"},
		// A set port replaces the request's.
		{Redirect{Port: 8443}, "http", "h:8080", "/p", "http://h:8443/p"},
		{Redirect{Port: 80}, "http", "[::1]:8080", "/p", "http://[::1]:80/p"},
		{Redirect{Host: "example.org"}, "http", "h:8080", "/p", "http://example.org/p"},
		{Redirect{Host: "example.org", Port: 81}, "http", "h", "/p", "http://example.org:81/p"},
		// Path: the rule's captures after the new path, the query kept.
		{Redirect{RewritePath: true, Path: "/new"}, "http", "h", "/old/a/b?q", "http://h/new/a/b?q"},
		{Redirect{RewritePath: true, Path: "/new"}, "http", "h", "/old", "http://h/new"},
		{Redirect{RewritePath: true}, "http", "h", "/old", "http://h/"},
	} {
		if got := tc.rd.Location(tc.scheme, tc.host, "/", rule, tc.reqPath); got != tc.want {
			t.Errorf("%+v on %s://%s%s: %s, want %s", tc.rd, tc.scheme, tc.host, tc.reqPath, got, tc.want)
		}
	}
}

func TestQueryMatches(t *testing.T) {
	r := &Rule{Query: []QueryMatch{{Name: "q", Value: MustRegexp("a b")}, {Name: "n", Value: MustRegexp("[0-9]+")}}}
	for query, want := range map[string]bool{
		"q=a%20b&n=1":     true,
		"n=12&x=&q=a%20b": true,
		"q=a+b&n=1":       false, // '+' is not a space here (Envoy)
		"q=a%20b&n=x&n=1": false, // the first value counts
		"q=a%20b":         false,
		"":                false,
		"%71=a%20b&n=0":   true, // names are decoded too
	} {
		if got := r.QueryMatches(query); got != want {
			t.Errorf("%q: %v, want %v", query, got, want)
		}
	}
}
