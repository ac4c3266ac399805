package h1

import (
	"net/http"
	"net/textproto"
	"strings"
)

// Small ASCII helpers for header names and values, shared with the data
// plane.

// CanonicalKey is textproto.CanonicalMIMEHeaderKey without an allocation
// for a name already canonical or common.
func CanonicalKey(s string) string {
	if c, ok := commonHeaders[s]; ok {
		return c
	}
	return textproto.CanonicalMIMEHeaderKey(s)
}

// RemoveConnectionHeaders drops headers named in a Connection header.
func RemoveConnectionHeaders(h http.Header, conn string) {
	for conn != "" {
		var f string
		if i := strings.IndexByte(conn, ','); i >= 0 {
			f, conn = conn[:i], conn[i+1:]
		} else {
			f, conn = conn, ""
		}
		f = TrimSpace(f)
		if f != "" && !EqualFold(f, "close") && !EqualFold(f, "keep-alive") && !EqualFold(f, "upgrade") {
			delete(h, textproto.CanonicalMIMEHeaderKey(f))
		}
	}
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

func trimCR(s string) string {
	if n := len(s); n > 0 && s[n-1] == '\r' {
		return s[:n-1]
	}
	return s
}

// TrimSpace trims spaces and tabs (OWS).
func TrimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// EqualFold compares ASCII case-insensitively.
func EqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerByte(a[i]) != lowerByte(b[i]) {
			return false
		}
	}
	return true
}

func asciiContainsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

func lowerByte(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// HasToken reports whether a comma-separated header contains tok.
func HasToken(vals []string, tok string) bool {
	for _, v := range vals {
		for v != "" {
			var f string
			if i := strings.IndexByte(v, ','); i >= 0 {
				f, v = v[:i], v[i+1:]
			} else {
				f, v = v, ""
			}
			if EqualFold(TrimSpace(f), tok) {
				return true
			}
		}
	}
	return false
}
