package tui

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// clean makes text that came from a request (a path, a user agent, a
// header value) safe to put on a terminal: C0 and C1 control characters
// and DEL would move the cursor, recolour or retitle the terminal, or
// start an escape sequence of their own, and the bidirectional controls
// (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C) would reorder
// what follows so a path reads as something else. Each is shown as its Go
// escape (\x1b, \u202e) instead: the row keeps its width and the reader
// sees that the request carried it. Text without any is returned as is,
// so the common case costs one scan.
func clean(s string) string {
	i := 0
	for i < len(s) {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		if c < 0x80 {
			break // C0 or DEL
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if unsafeRune(r) || (r == utf8.RuneError && size == 1) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for _, r := range s[i:] {
		switch {
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r) // an invalid byte decodes as U+FFFD, shown as such
		}
	}
	return b.String()
}

// unsafeRune reports the non-ASCII runes clean escapes: C1 controls and
// the bidirectional formatting characters.
func unsafeRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f:
		return true
	case r >= 0x202a && r <= 0x202e:
		return true
	case r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// cleanRecord applies clean to every text field of a streamed record:
// all of them can carry bytes a client chose.
func (r *logRecord) clean() {
	for _, p := range [...]*string{&r.Method, &r.Path, &r.Protocol, &r.ResponseFlags, &r.UserAgent, &r.RequestID,
		&r.Authority, &r.UpstreamHost, &r.Cluster, &r.Remote, &r.API, &r.Route, &r.GatewayID, &r.TraceID,
		&r.Policy, &r.PolicyOutcome} {
		*p = clean(*p)
	}
}
