package exporters

import (
	"encoding/binary"
	"unicode/utf8"
)

// plainASCII marks the bytes a JSON string holds as they are.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// AppendStringBytes appends s as a JSON string literal, exactly as
// AppendString does for string(s) (invalid UTF-8 becomes U+FFFD), without
// converting s to a string: msgpack values and queued messages are bytes,
// and the conversion would allocate for every value over 32 bytes.
func AppendStringBytes(b []byte, s []byte) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// Most values are long runs of plain ASCII (user agents, paths):
		// test 8 bytes at a time and skip those with nothing to escape.
		for len(s)-i >= 8 && !special8(binary.LittleEndian.Uint64(s[i:])) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if plainASCII[c] {
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
		r, size := utf8.DecodeRune(s[i:])
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

const hexDigits = "0123456789abcdef"
