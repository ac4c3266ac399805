package translate

import "testing"

func TestStatName(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "",
		"http_0.0.0.0_8080": "http_0_0_0_0_8080",
		"ns_api-1_r0":       "ns_api-1_r0",
		"a/b c":             "a_b_c",
		"é.x":               "__x", // one '_' per character, not per byte
		"\xff":              "_",
	} {
		if got := statName(in); got != want {
			t.Errorf("statName(%q) = %q, want %q", in, got, want)
		}
	}
}
