package ir

import (
	"errors"
	"fmt"
	"strings"
)

// This file defines the one request-path normalisation both data planes
// apply before routing, policy rules and rewrites, and that the upstream
// receives. It is Envoy's HTTP connection manager pipeline with
// path_with_escaped_slashes_action, normalize_path and merge_slashes set
// (the translation sets exactly those, see envoy/translate/listener.go):
//
//  1. escaped slashes (%2F, %5C, either case) are handled by EscapedSlashes;
//  2. a segment starting "..;" or ".;" loses its parameters (Envoy's
//     strip_dotdot_segments_with_parameters; Tomcat reads "..;" as "..");
//  3. percent-escapes of unreserved characters are decoded (RFC 3986
//     §6.2.2.2), others kept as sent; a malformed escape is rejected;
//     a backslash is a slash (as Envoy's URL canonicaliser reads it);
//     bytes a path cannot carry (controls, space, '"', '#', '<', '>',
//     '`', '{', '}', DEL, non-ASCII) are percent-encoded;
//  4. dot segments are removed (RFC 3986 §5.2.4), never above the root;
//  5. repeated slashes are merged.
//
// Steps 4 and 5 run in that order, as in Envoy: "/a//../b" is "/a/b".

// EscapedSlashes is what a request path's %2F and %5C escapes do: Envoy's
// path_with_escaped_slashes_action. The zero value is the default.
type EscapedSlashes uint8

const (
	// EscapedSlashesReject answers 400: an encoded slash is how a path
	// hides a segment boundary from the gateway but not from an upstream
	// that decodes it. The default.
	EscapedSlashesReject EscapedSlashes = iota
	// EscapedSlashesUnescapeRedirect decodes them and redirects (307) the
	// client to the normalised path.
	EscapedSlashesUnescapeRedirect
	// EscapedSlashesUnescapeForward decodes them and serves the request.
	EscapedSlashesUnescapeForward
	// EscapedSlashesKeep leaves them encoded: they are not segment
	// boundaries for routing and rules, and the upstream gets them as sent.
	EscapedSlashesKeep
)

var escapedSlashesNames = [...]string{"reject", "unescape-redirect", "unescape-forward", "keep"}

func (e EscapedSlashes) String() string {
	if int(e) < len(escapedSlashesNames) {
		return escapedSlashesNames[e]
	}
	return fmt.Sprintf("EscapedSlashes(%d)", e)
}

// ParseEscapedSlashes reads a --escaped-slashes value ("" is the default).
func ParseEscapedSlashes(s string) (EscapedSlashes, error) {
	if s == "" {
		return EscapedSlashesReject, nil
	}
	for i, n := range escapedSlashesNames {
		if s == n {
			return EscapedSlashes(i), nil
		}
	}
	return 0, fmt.Errorf("escaped slashes action %q: want one of %s", s, strings.Join(escapedSlashesNames[:], ", "))
}

// PathVerdict is what NormalizePath decided about a request path.
type PathVerdict uint8

const (
	// PathOK: serve the request with the returned path.
	PathOK PathVerdict = iota
	// PathRedirect: answer 307 with the returned path as Location.
	PathRedirect
	// PathReject: answer 400.
	PathReject
)

// ErrPathRejected is the reason NormalizePath gives for a PathReject.
var ErrPathRejected = errors.New("request path rejected")

// NormalizePath normalises an escaped request path (no query), which must
// start with "/". A path already normal is returned as is without
// allocating, so the common request pays one scan.
func NormalizePath(p string, es EscapedSlashes) (string, PathVerdict) {
	if len(p) == 0 || p[0] != '/' {
		return p, PathReject
	}
	if !needsNormalizing(p) {
		return p, PathOK
	}
	var stack [512]byte
	out, v := normalizeSlow(p, es, stack[:0])
	if v == PathReject {
		return p, v
	}
	if string(out) == p {
		return p, v
	}
	return string(out), v
}

// needsNormalizing is the fast scan: no escape, backslash, byte to encode,
// empty segment or segment starting with a dot.
func needsNormalizing(p string) bool {
	prev := byte(0)
	for i := 0; i < len(p); i++ {
		c := p[i]
		if pathByte[c] != pbPlain {
			return true
		}
		if prev == '/' && (c == '/' || c == '.') {
			return true
		}
		prev = c
	}
	return false
}

// Byte classes for paths.
const (
	pbPlain   = iota // copied
	pbSpecial        // '%' or '\\': handled by the slow path
	pbEncode         // percent-encoded
)

var pathByte = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c <= ' ' || c >= 0x7f:
			t[c] = pbEncode
		case strings.IndexByte("\"#<>`{}", byte(c)) >= 0:
			t[c] = pbEncode
		case c == '%' || c == '\\':
			t[c] = pbSpecial
		}
	}
	return t
}()

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

const upperHex = "0123456789ABCDEF"

// normalizeSlow runs the whole pipeline into buf.
func normalizeSlow(p string, es EscapedSlashes, buf []byte) ([]byte, PathVerdict) {
	verdict := PathOK
	if es == EscapedSlashesReject && hasEscapedSlash(p) {
		return nil, PathReject
	}
	// Steps 1 and 3, per byte; step 2 needs the raw segment, so segment
	// starts are checked as they are reached.
	b := buf
	segStart := true
	for i := 0; i < len(p); i++ {
		c := p[i]
		if segStart && c == '.' {
			// Step 2 on the raw segment: "..;x" → "..", ".;x" → ".".
			end := rawSegmentEnd(p[i:], es)
			seg := p[i : i+end]
			if es == EscapedSlashesUnescapeRedirect && hasEscapedSlash(seg) && (strings.HasPrefix(seg, ".;") || strings.HasPrefix(seg, "..;")) {
				verdict = PathRedirect // Envoy unescaped it before dropping it
			}
			if strings.HasPrefix(seg, "..;") {
				b = append(b, '.', '.')
				i += end - 1
				segStart = false
				continue
			}
			if strings.HasPrefix(seg, ".;") {
				b = append(b, '.')
				i += end - 1
				segStart = false
				continue
			}
		}
		segStart = false
		switch {
		case c == '%':
			var hi, lo byte
			ok := i+2 < len(p)
			if ok {
				var ok1, ok2 bool
				hi, ok1 = unhex(p[i+1])
				lo, ok2 = unhex(p[i+2])
				ok = ok1 && ok2
			}
			if !ok {
				// Copied as Envoy's canonicaliser does; what it makes of
				// the bytes after it is judged on the result below.
				b = append(b, '%')
				continue
			}
			d := hi<<4 | lo
			switch {
			case d == '/' || d == '\\':
				if es == EscapedSlashesKeep {
					b = append(b, p[i:i+3]...)
					break
				}
				// Unescaped: "%2F" is a slash, "%5C" a backslash, which
				// the canonicaliser reads as a slash too (but step 2,
				// like Envoy's, splits only on slashes).
				b = append(b, '/')
				segStart = d == '/'
				if es == EscapedSlashesUnescapeRedirect {
					verdict = PathRedirect
				}
			case isUnreserved(d):
				b = append(b, d)
			default:
				b = append(b, p[i:i+3]...)
			}
			i += 2
		case c == '/':
			b = append(b, '/')
			segStart = true
		case c == '\\':
			b = append(b, '/')
		case pathByte[c] == pbEncode:
			b = append(b, '%', upperHex[c>>4], upperHex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	// Step 4: dot segments, in place. Segments are kept between slashes,
	// empty ones too (merging comes after).
	b = removeDotSegments(b)
	// Step 5: merge slashes, in place.
	w := 0
	for r := 0; r < len(b); r++ {
		if b[r] == '/' && w > 0 && b[w-1] == '/' {
			continue
		}
		b[w] = b[r]
		w++
	}
	b = b[:w]
	// A redirect serves nothing: like Envoy, redirect first; the request
	// for the normalised path is judged when it comes.
	if verdict == PathOK && rejectedResult(b, es) {
		return nil, PathReject
	}
	return b, verdict
}

// rejectedResult reports a normalised path that only a trick produces
// (RejectedPathRegex is the same test for Envoy, which runs the same
// normalisation but forwards these):
//   - a segment starting ".;" or "..;": escaped dots with parameters
//     ("%2e%2e;"), a dot segment to an upstream that strips parameters;
//   - a malformed escape;
//   - an escaped unreserved character, or an escaped slash unless they are
//     kept: a malformed escape completed by a decoded one ("%2%65" becomes
//     "%2e"), a dot or slash for an upstream that decodes once more.
func rejectedResult(b []byte, es EscapedSlashes) bool {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '/':
			if i+2 < len(b) && b[i+1] == '.' && (b[i+2] == ';' || b[i+2] == '.' && i+3 < len(b) && b[i+3] == ';') {
				return true
			}
		case '%':
			if i+2 >= len(b) {
				return true
			}
			hi, ok1 := unhex(b[i+1])
			lo, ok2 := unhex(b[i+2])
			if !ok1 || !ok2 {
				return true
			}
			d := hi<<4 | lo
			if isUnreserved(d) || (d == '/' || d == '\\') && es != EscapedSlashesKeep {
				return true
			}
		}
	}
	return false
}

// RejectedPathRegex is an RE2 pattern matching (whole path) what
// NormalizePath rejects after normalising (see rejectedResult), for a
// route that answers 400 on Envoy, whose normalisation is the same but
// lets these through.
func RejectedPathRegex(es EscapedSlashes) string {
	re := `.*/\.\.?;.*` +
		`|.*%(?:[^0-9A-Fa-f].*|[0-9A-Fa-f][^0-9A-Fa-f].*|[0-9A-Fa-f]?)` +
		`|.*%(?:3[0-9]|[46][1-9A-Fa-f]|[57][0-9Aa]|2[DdEe]|5[Ff]|7[Ee]).*`
	if es != EscapedSlashesKeep {
		re += `|.*%(?:2[Ff]|5[Cc]).*`
	}
	return re
}

// rawSegmentEnd is the length of the raw segment s starts with: up to a
// slash, or an escaped one when escaped slashes are decoded (Envoy decodes
// them first). A backslash does not end it: Envoy splits on '/' there.
func rawSegmentEnd(s string, es EscapedSlashes) int {
	for j := 0; j < len(s); j++ {
		if s[j] == '/' {
			return j
		}
		if s[j] == '%' && j+2 < len(s) && s[j+1] == '2' && (s[j+2] == 'f' || s[j+2] == 'F') &&
			(es == EscapedSlashesUnescapeForward || es == EscapedSlashesUnescapeRedirect) {
			return j
		}
	}
	return len(s)
}

func hasEscapedSlash(s string) bool {
	for j := 0; j+2 < len(s); j++ {
		if s[j] == '%' && (s[j+1] == '2' && (s[j+2] == 'f' || s[j+2] == 'F') || s[j+1] == '5' && (s[j+2] == 'c' || s[j+2] == 'C')) {
			return true
		}
	}
	return false
}

// removeDotSegments removes "." and ".." segments from an absolute path
// in place. A path ending in a dot segment keeps its trailing slash.
func removeDotSegments(b []byte) []byte {
	w := 0 // b[:w] is the output; it starts with '/'
	r := 0
	for r < len(b) {
		// b[r] == '/': the segment is b[r+1:e].
		e := r + 1
		for e < len(b) && b[e] != '/' {
			e++
		}
		seg := b[r+1 : e]
		last := e == len(b)
		switch {
		case len(seg) == 1 && seg[0] == '.':
			if last {
				b[w] = '/'
				w++
			}
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			// Drop the previous segment (never the root).
			for w > 0 {
				w--
				if b[w] == '/' {
					break
				}
			}
			if last {
				b[w] = '/'
				w++
			}
		default:
			w += copy(b[w:], b[r:e])
		}
		r = e
	}
	if w == 0 {
		b = append(b[:0], '/')
		return b
	}
	return b[:w]
}

// DotSegmentFree reports whether no segment of p is "." or "..": a path
// a rewrite may hand the upstream without leaving its prefix.
func DotSegmentFree(p string) bool {
	for p != "" {
		var seg string
		if i := strings.IndexByte(p, '/'); i >= 0 {
			seg, p = p[:i], p[i+1:]
		} else {
			seg, p = p, ""
		}
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
