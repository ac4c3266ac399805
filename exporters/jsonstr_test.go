package exporters

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// TestAppendStringBytesMatchesAppendString checks the word-at-a-time
// scanner against the byte-at-a-time one on inputs that put every special
// byte at every position of an 8-byte word, and on random bytes.
func TestAppendStringBytesMatchesAppendString(t *testing.T) {
	specials := []byte{0, 0x1f, 0x20, '"', '\\', 0x7f, 0x80, 0xc3, 0xe2, 0xff, '\n', '\t', '!', '#', '[', ']'}
	var inputs [][]byte
	for n := 0; n <= 24; n++ {
		for pos := 0; pos < n; pos++ {
			for _, c := range specials {
				b := bytes.Repeat([]byte("a"), n)
				b[pos] = c
				inputs = append(inputs, b)
			}
		}
	}
	inputs = append(inputs, []byte("héllo wörld — ok"), []byte("\xe2\x82"), []byte("tail\xc3"), []byte("€€€€€€€€\"x"))
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		b := make([]byte, r.IntN(40))
		for j := range b {
			b[j] = byte(r.IntN(256))
			if r.IntN(4) > 0 {
				b[j] = byte(0x20 + r.IntN(0x60))
			}
		}
		inputs = append(inputs, b)
	}
	for _, in := range inputs {
		got := AppendStringBytes([]byte("x"), in)
		want := AppendString([]byte("x"), string(in))
		if !bytes.Equal(got, want) {
			t.Fatalf("input %q: got %s, want %s", in, got, want)
		}
		var s string
		if err := json.Unmarshal(got[1:], &s); err != nil {
			t.Fatalf("input %q: %s is not a JSON string: %v", in, got[1:], err)
		}
		if utf8.Valid(in) && s != string(in) {
			t.Fatalf("input %q: round trip gave %q", in, s)
		}
	}
}

func FuzzAppendStringBytes(f *testing.F) {
	f.Add([]byte("plain ascii, long enough for two words"))
	f.Add([]byte("q\"uote\\back\x01ctl\xffbad€ok"))
	f.Fuzz(func(t *testing.T, in []byte) {
		if got, want := AppendStringBytes(nil, in), AppendString(nil, string(in)); !bytes.Equal(got, want) {
			t.Fatalf("input %q: got %s, want %s", in, got, want)
		}
	})
}
