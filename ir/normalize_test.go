package ir

import (
	"regexp"
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		in   string
		es   EscapedSlashes
		want string
		v    PathVerdict
	}{
		{"/", 0, "/", PathOK},
		{"/admin/x", 0, "/admin/x", PathOK},
		{"//admin/x", 0, "/admin/x", PathOK},
		{"/./admin/x", 0, "/admin/x", PathOK},
		{"/%61dmin/x", 0, "/admin/x", PathOK},
		{"/x/../admin/x", 0, "/admin/x", PathOK},
		{"/%2e/admin/x", 0, "/admin/x", PathOK},
		{"/%2E%2e/admin", 0, "/admin", PathOK},
		{"/public/../secure/x", 0, "/secure/x", PathOK},
		{"/public/%2e%2e/secure/x", 0, "/secure/x", PathOK},
		{"/public/..;/secure/x", 0, "/secure/x", PathOK},
		{"/public/..;jsessionid=1/secure", 0, "/secure", PathOK},
		{"/a/.;x/b", 0, "/a/b", PathOK},
		{"/../../etc/passwd", 0, "/etc/passwd", PathOK},
		{"/a/b/..", 0, "/a/", PathOK},
		{"/a/b/.", 0, "/a/b/", PathOK},
		{"/a/..", 0, "/", PathOK},
		{"/..", 0, "/", PathOK},
		{"/a//../b", 0, "/a/b", PathOK}, // dot segments before merging, as Envoy
		{"/a///b//", 0, "/a/b/", PathOK},
		{"/a\\b", 0, "/a/b", PathOK},
		{"/a\\..\\admin", 0, "/admin", PathOK},
		{"/a%20b", 0, "/a%20b", PathOK},
		{"/a%7e%41", 0, "/a~A", PathOK},
		{"/a%3Bb%3f", 0, "/a%3Bb%3f", PathOK}, // reserved escapes kept as sent
		{"/a b", 0, "/a%20b", PathOK},
		{"/caf\xc3\xa9", 0, "/caf%C3%A9", PathOK},
		{"/a\"<>`{}#", 0, "/a%22%3C%3E%60%7B%7D%23", PathOK},
		{"/.well-known/x", 0, "/.well-known/x", PathOK},
		{"/a..b/..c", 0, "/a..b/..c", PathOK},
		{"/%zz", 0, "", PathReject},
		{"/%2", 0, "", PathReject},
		{"x", 0, "", PathReject},
		{"", 0, "", PathReject},
		{"/%2Fadmin/x", EscapedSlashesReject, "", PathReject},
		{"/a%5cb", EscapedSlashesReject, "", PathReject},
		{"/..;%2f/x", EscapedSlashesReject, "", PathReject},
		{"/%2Fadmin/x", EscapedSlashesUnescapeForward, "/admin/x", PathOK},
		{"/a%2F..%2Fadmin", EscapedSlashesUnescapeForward, "/admin", PathOK},
		{"/a%5C..%5Cadmin", EscapedSlashesUnescapeForward, "/admin", PathOK},
		{"/%2Fadmin/x", EscapedSlashesUnescapeRedirect, "/admin/x", PathRedirect},
		{"/a%2F..%2Fadmin", EscapedSlashesKeep, "/a%2F..%2Fadmin", PathOK},
		{"/a/..;x%2Fb/c", EscapedSlashesUnescapeForward, "/b/c", PathOK},
	}
	for _, tt := range tests {
		got, v := NormalizePath(tt.in, tt.es)
		if v != tt.v || (v != PathReject && got != tt.want) {
			t.Errorf("NormalizePath(%q, %s) = %q, %d; want %q, %d", tt.in, tt.es, got, v, tt.want, tt.v)
		}
	}
}

func TestNormalizePathNoAllocWhenNormal(t *testing.T) {
	for _, p := range []string{"/", "/api/orders/123", "/.well-known/openid-configuration", "/a/b%20c"} {
		n := testing.AllocsPerRun(100, func() { NormalizePath(p, EscapedSlashesReject) })
		if n != 0 {
			t.Errorf("NormalizePath(%q) allocates %v times", p, n)
		}
	}
}

func TestParseEscapedSlashes(t *testing.T) {
	for i, n := range escapedSlashesNames {
		got, err := ParseEscapedSlashes(n)
		if err != nil || got != EscapedSlashes(i) || got.String() != n {
			t.Errorf("ParseEscapedSlashes(%q) = %v, %v", n, got, err)
		}
	}
	if got, err := ParseEscapedSlashes(""); err != nil || got != EscapedSlashesReject {
		t.Errorf(`ParseEscapedSlashes("") = %v, %v`, got, err)
	}
	if _, err := ParseEscapedSlashes("drop"); err == nil || !strings.Contains(err.Error(), "unescape-redirect") {
		t.Errorf("ParseEscapedSlashes(drop) error = %v, want the valid values listed", err)
	}
}

// checkNormal asserts what every normalised path satisfies.
func checkNormal(t *testing.T, in, out string, es EscapedSlashes) {
	t.Helper()
	if out == "" || out[0] != '/' {
		t.Fatalf("%q → %q: not absolute", in, out)
	}
	if strings.Contains(out, "//") {
		t.Fatalf("%q → %q: repeated slash", in, out)
	}
	if !DotSegmentFree(out) {
		t.Fatalf("%q → %q: dot segment left", in, out)
	}
	if strings.IndexByte(out, '\\') >= 0 {
		t.Fatalf("%q → %q: backslash left", in, out)
	}
	for i := 0; i < len(out); i++ {
		c := out[i]
		if pathByte[c] == pbEncode {
			t.Fatalf("%q → %q: byte %#x not encoded", in, out, c)
		}
		if c == '%' {
			if i+2 >= len(out) {
				t.Fatalf("%q → %q: truncated escape", in, out)
			}
			hi, ok1 := unhex(out[i+1])
			lo, ok2 := unhex(out[i+2])
			if !ok1 || !ok2 {
				t.Fatalf("%q → %q: malformed escape", in, out)
			}
			d := hi<<4 | lo
			if isUnreserved(d) {
				t.Fatalf("%q → %q: unreserved %q left encoded", in, out, d)
			}
			if (d == '/' || d == '\\') && es != EscapedSlashesKeep {
				t.Fatalf("%q → %q: escaped slash left under %s", in, out, es)
			}
		}
	}
	again, v := NormalizePath(out, es)
	if v != PathOK || again != out {
		t.Fatalf("not idempotent: %q → %q → %q (%d)", in, out, again, v)
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "//a/./b/../c", "/%2e%2E/%61", "/a%2Fb", "/a\\..\\b", "/..;/x", "/a%5c..", "/\xff%zz", "/.well-known/../."} {
		f.Add(s, uint8(0))
		f.Add(s, uint8(2))
		f.Add(s, uint8(3))
	}
	f.Fuzz(func(t *testing.T, p string, esb uint8) {
		es := EscapedSlashes(esb % 4)
		p = "/" + p
		out, v := NormalizePath(p, es)
		if v == PathReject {
			return
		}
		if v == PathRedirect && rejectedResult([]byte(out), es) {
			// Like Envoy, unescape-redirect redirects first and judges the
			// redirected request when it comes ("/%0X%2F" → "/%0X/" is then
			// rejected, "/%5C.;" → "/.;" then served as "/"): whatever the
			// redirected request is served as is normal.
			if again, av := NormalizePath(out, es); av == PathOK {
				checkNormal(t, out, again, es)
			}
			return
		}
		checkNormal(t, p, out, es)
	})
}

func TestRejectedPathRegex(t *testing.T) {
	for es := EscapedSlashes(0); es < 4; es++ {
		re := regexp.MustCompile("^(?:" + RejectedPathRegex(es) + ")$")
		for _, p := range []string{"/.;x", "/a/..;/b", "/a%zz", "/a%", "/a%4", "/a%4g/b", "/%2e", "/%41", "/a%7e", "/%5f", "/%30"} {
			if !re.MatchString(p) || !rejectedResult([]byte(p), es) {
				t.Errorf("%s: %q not rejected (regex %v)", es, p, re.MatchString(p))
			}
		}
		for _, p := range []string{"/a;b", "/a/.b;c", "/a.;b", "/", "/a%20", "/a%C3%A9", "/%3B", "/%40%2C"} {
			if re.MatchString(p) || rejectedResult([]byte(p), es) {
				t.Errorf("%s: %q rejected (regex %v)", es, p, re.MatchString(p))
			}
		}
		for _, p := range []string{"/a%2Fb", "/a%5c"} {
			want := es != EscapedSlashesKeep
			if re.MatchString(p) != want || rejectedResult([]byte(p), es) != want {
				t.Errorf("%s: %q rejected: regex %v, code %v; want %v", es, p, re.MatchString(p), rejectedResult([]byte(p), es), want)
			}
		}
	}
	// The regex and the code agree on every 3-byte tail.
	alphabet := "/.;%25aEfg~"
	for es := EscapedSlashes(0); es < 4; es++ {
		re := regexp.MustCompile("^(?:" + RejectedPathRegex(es) + ")$")
		for _, a := range alphabet {
			for _, b := range alphabet {
				for _, c := range alphabet {
					for _, d := range alphabet {
						p := "/" + string([]rune{a, b, c, d})
						if re.MatchString(p) != rejectedResult([]byte(p), es) {
							t.Fatalf("%s: %q: regex %v, code %v", es, p, re.MatchString(p), rejectedResult([]byte(p), es))
						}
					}
				}
			}
		}
	}
}
