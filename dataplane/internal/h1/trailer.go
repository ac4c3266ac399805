package h1

import (
	"net/http"
	"strings"
)

// This file decides which trailer fields cross the proxy.

// Default limits of a chunked body's trailer section: the same as the
// server's request head limits (Options.MaxHeaders, MaxHeaderBytes), so
// a trailer section is never a way around them.
const (
	DefaultMaxTrailers     = 100
	DefaultMaxTrailerBytes = 64 << 10
)

// forbiddenTrailers are fields a recipient must not take from a trailer
// section (RFC 9110 6.5.1): message framing (a Content-Length or
// Transfer-Encoding arriving after the body would reframe it at the next
// hop), routing, request modifiers and authentication, response control
// and the content-* metadata that describes the representation, plus
// the connection-level fields of RFC 9110 7.6.1. Go's net/http refuses
// the same set (httpguts.ValidTrailerHeader) with a few more added here.
var forbiddenTrailers = map[string]bool{
	// framing and connection
	"Content-Length": true, "Transfer-Encoding": true, "Trailer": true, "Te": true,
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Upgrade": true,
	// routing and request modifiers
	"Host": true, "Expect": true, "Max-Forwards": true, "Range": true,
	"If-Match": true, "If-None-Match": true, "If-Modified-Since": true,
	"If-Unmodified-Since": true, "If-Range": true, "Cookie": true,
	"Forwarded": true, "X-Forwarded-For": true, "X-Forwarded-Proto": true, "X-Forwarded-Host": true,
	// authentication
	"Authorization": true, "Proxy-Authorization": true, "Www-Authenticate": true,
	"Proxy-Authenticate": true, "Realm": true,
	// response control
	"Cache-Control": true, "Pragma": true, "Age": true, "Expires": true, "Date": true,
	"Location": true, "Retry-After": true, "Vary": true, "Warning": true, "Set-Cookie": true,
}

// TrailerAllowed reports whether the canonical field name key may be
// relayed as a trailer: not in the forbidden set, no Content-* field,
// no HTTP/2 pseudo-header.
func TrailerAllowed(key string) bool {
	if key == "" || key[0] == ':' || forbiddenTrailers[key] {
		return false
	}
	return !strings.HasPrefix(key, "Content-")
}

// FilterTrailers deletes the fields TrailerAllowed refuses from h (keys
// canonical) and reports whether any field is left.
func FilterTrailers(h http.Header) bool {
	for k := range h {
		if !TrailerAllowed(k) {
			delete(h, k)
		}
	}
	return len(h) > 0
}

// trailerSection collects the trailer lines after a last chunk. Fields
// are validated as strictly as a request head's (token name, no control
// characters, no obs-fold); the limits count every line, kept or not.
type trailerSection struct {
	h     http.Header
	n     int
	bytes int
}

func (t *trailerSection) add(line []byte, maxN, maxBytes int) error {
	t.n++
	t.bytes += len(line)
	if t.n > maxN || t.bytes > maxBytes {
		return errTrailerLimit
	}
	s := trimCR(strings.TrimSuffix(string(line), "\n"))
	if s == "" || s[0] == ' ' || s[0] == '\t' {
		return errChunkTrailers
	}
	colon := strings.IndexByte(s, ':')
	if colon <= 0 || !validToken(s[:colon]) {
		return errChunkTrailers
	}
	v := TrimSpace(s[colon+1:])
	if !validValue(v) {
		return errChunkTrailers
	}
	key := CanonicalKey(s[:colon])
	if !TrailerAllowed(key) {
		return nil
	}
	if t.h == nil {
		t.h = make(http.Header, 2)
	}
	t.h[key] = append(t.h[key], v)
	return nil
}

// appendTrailerFields emits the fields of a trailer section being
// written: the values of the names h declared in its Trailer header
// and of every http.TrailerPrefix key, as net/http's writers do, minus
// the fields TrailerAllowed refuses and any name or value that would
// break the framing (a CR or LF from a policy or an HTTP/2 upstream).
func appendTrailerFields(h http.Header, declared []string, emit func(k, v string)) {
	for _, names := range declared {
		for names != "" {
			var k string
			if i := strings.IndexByte(names, ','); i >= 0 {
				k, names = names[:i], names[i+1:]
			} else {
				k, names = names, ""
			}
			k = CanonicalKey(TrimSpace(k))
			if !TrailerAllowed(k) {
				continue
			}
			for _, v := range h[k] {
				if validToken(k) && validValue(v) {
					emit(k, v)
				}
			}
		}
	}
	for k, vv := range h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			name = CanonicalKey(name)
			if !TrailerAllowed(name) {
				continue
			}
			for _, v := range vv {
				if validToken(name) && validValue(v) {
					emit(name, v)
				}
			}
		}
	}
}

// ValidFieldName reports whether s is a field name (RFC 9110 token).
func ValidFieldName(s string) bool { return validToken(s) }

// ValidFieldValue reports whether s holds no control character but tab.
func ValidFieldValue(s string) bool { return validValue(s) }
