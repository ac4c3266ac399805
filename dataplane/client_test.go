package dataplane

import (
	"net/http"
	"net/url"
	"testing"
)

func TestRequestLineSafePathAndQuery(t *testing.T) {
	r := &http.Request{URL: &url.URL{Path: "/a b\r\nX: y", RawQuery: "q=1 2\r\n"}}
	if got := requestPath(r); got != "/a%20b%0D%0AX:%20y" {
		t.Errorf("path %q", got)
	}
	if got := requestQuery(r); got != "q=1%202%0D%0A" {
		t.Errorf("query %q", got)
	}
	r = &http.Request{URL: &url.URL{Path: "/a/b c", RawPath: "/a/b%20c", RawQuery: "x=1&y=%20"}}
	if requestPath(r) != "/a/b%20c" || requestQuery(r) != "x=1&y=%20" {
		t.Errorf("clean request changed: %q %q", requestPath(r), requestQuery(r))
	}
}
