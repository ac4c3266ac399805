// Package jsonstr is flexgw's one JSON string escaper: the access log,
// logpipe's msgpack transcoder and the exporters' envelopes all write
// strings through it, so a hostile header is escaped the same way
// wherever it goes. Invalid UTF-8 becomes U+FFFD (as encoding/json does),
// so a record can never break the line format. Control characters are
// written as \n, \r, \t or \u00XX, and nothing else is escaped: '<', '>'
// and '&' stay as they are (these are log lines, not HTML).
package jsonstr

import (
	"unicode/utf8"
)

// Append appends s as a JSON string literal.
func Append(b []byte, s string) []byte { return appendString(b, s) }

// AppendBytes is Append for bytes, without converting them to a string:
// msgpack values and queued messages are bytes, and the conversion would
// allocate for every value over 32 bytes.
func AppendBytes(b []byte, s []byte) []byte { return appendString(b, s) }

// plain marks the bytes a JSON string holds as they are.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

func appendString[S ~string | ~[]byte](b []byte, s S) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// Most values are long runs of plain ASCII (user agents, paths):
		// test 8 bytes at a time and skip those with nothing to escape.
		for len(s)-i >= 8 && !special8(load64(s, i)) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if plain[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		// At most 4 bytes: the conversion of a []byte stays on the stack.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// load64 reads 8 bytes of s at i, little endian (the compiler merges the
// byte loads into one).
func load64[S ~string | ~[]byte](s S, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// special8 reports whether any of the 8 bytes in w needs more than a copy
// in a JSON string: a control character (< 0x20), '"', '\\' or a byte of
// a multi-byte UTF-8 sequence (>= 0x80, to be validated). The classic
// "has a zero byte" bit trick: for each byte b, (b - k) sets the top bit
// only when b < k, unless b itself has the top bit (covered by w&msb).
func special8(w uint64) bool {
	lt20 := (w - lsb*0x20) & ^w & msb
	q := w ^ lsb*'"'
	quote := (q - lsb) & ^q & msb
	bs := w ^ lsb*'\\'
	back := (bs - lsb) & ^bs & msb
	return (lt20|quote|back)|(w&msb) != 0
}
