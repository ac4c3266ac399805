package jsonstr

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// stdlib is encoding/json's rendering of s, without HTML escaping.
func stdlib(t testing.TB, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// check holds Append and AppendBytes to encoding/json: the same string
// once decoded (invalid UTF-8 read as U+FFFD by both), and the same bytes
// where encoding/json makes no other choice of escape (it writes \b, \f,
// \u2028 and \u2029 where we write \u0008, \u000c and the characters).
func check(t testing.TB, in []byte) {
	got := Append([]byte("x"), string(in))
	if gb := AppendBytes([]byte("x"), in); !bytes.Equal(gb, got) {
		t.Fatalf("input %q: AppendBytes %s, Append %s", in, gb, got)
	}
	if !bytes.HasPrefix(got, []byte("x")) {
		t.Fatalf("input %q: prefix lost: %s", in, got)
	}
	got = got[1:]
	want := stdlib(t, string(in))
	var g, w string
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("input %q: %s is not a JSON string: %v", in, got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if g != w {
		t.Fatalf("input %q: decodes to %q, encoding/json's to %q", in, g, w)
	}
	if utf8.Valid(in) && g != string(in) {
		t.Fatalf("input %q: round trip gave %q", in, g)
	}
	if !bytes.ContainsAny(in, "\b\f\u2028\u2029") && !bytes.Equal(got, want) {
		t.Fatalf("input %q: got %s, encoding/json %s", in, got, want)
	}
}

// TestAgainstEncodingJSON puts every special byte at every position of
// the 8-byte words the fast path tests, then random bytes.
func TestAgainstEncodingJSON(t *testing.T) {
	specials := []byte{0, '\b', '\f', 0x1f, 0x20, '"', '\\', '/', '<', '&', 0x7f, 0x80, 0xc3, 0xe2, 0xff, '\n', '\r', '\t', '!', '#', '[', ']'}
	for n := 0; n <= 24; n++ {
		for pos := 0; pos < n; pos++ {
			for _, c := range specials {
				b := bytes.Repeat([]byte("a"), n)
				b[pos] = c
				check(t, b)
			}
		}
	}
	for _, s := range []string{"", "héllo wörld — ok", "\xe2\x82", "tail\xc3", "€€€€€€€€\"x", "\xed\xa0\x80 surrogate",
		"\xf4\x90\x80\x80 above U+10FFFF", "\xc0\xaf overlong", "line\u2028sep", strings.Repeat("x", 1000) + "\x01"} {
		check(t, []byte(s))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		b := make([]byte, r.IntN(40))
		for j := range b {
			b[j] = byte(r.IntN(256))
			if r.IntN(4) > 0 {
				b[j] = byte(0x20 + r.IntN(0x60))
			}
		}
		check(t, b)
	}
}

func FuzzAgainstEncodingJSON(f *testing.F) {
	f.Add([]byte("plain ascii, long enough for two words"))
	f.Add([]byte("q\"uote\\back\x01ctl\xffbad€ok"))
	f.Fuzz(func(t *testing.T, in []byte) { check(t, in) })
}

func BenchmarkAppendBytes(b *testing.B) {
	in := []byte(`Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 "quoted" é`)
	buf := make([]byte, 0, 256)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		buf = AppendBytes(buf[:0], in)
	}
}

func BenchmarkAppend(b *testing.B) {
	in := `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 "quoted" é`
	buf := make([]byte, 0, 256)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		buf = Append(buf[:0], in)
	}
}
