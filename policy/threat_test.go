package policy_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/policy"
)

// bodyUpstream records the bodies that reached it.
type bodyUpstream struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

func newBodyUpstream(t *testing.T) *bodyUpstream {
	u := &bodyUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.bodies = append(u.bodies, string(b))
		u.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *bodyUpstream) got() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.bodies...)
}

func post(t *testing.T, url, ctype, body string) policytest.Resp {
	t.Helper()
	res, err := http.Post(url, ctype, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return policytest.Resp{Status: res.StatusCode, Header: res.Header, Body: string(b)}
}

// proxyTo is a gateway in front of a body-recording upstream.
func proxyTo(t *testing.T, up *bodyUpstream, name, cfg string) string {
	return policytest.NewGateway(t, policy.Env{}, &policytest.Upstream{Server: up.Server}, policytest.Policy(name, cfg)).URL
}

func TestJSONThreatProtection(t *testing.T) {
	up := newBodyUpstream(t)
	gw := proxyTo(t, up, "json-threat-protection-flex", `{"maxContainerDepth":3,"maxObjectEntryCount":3,"maxObjectEntryNameLength":5,"maxArrayElementCount":4,"maxStringValueLength":6}`)
	ok := `{"a":[1,2,{"b":"héllo!"}],"c":{"d":null},"e":true}`
	if r := post(t, gw, "application/json", ok); r.Status != 200 {
		t.Fatalf("valid document: %d %s", r.Status, r.Body)
	}
	if got := up.got(); len(got) != 1 || got[0] != ok {
		t.Fatalf("upstream got %q, want the body unchanged", got)
	}
	for _, c := range []struct{ name, body, want string }{
		{"depth", `{"a":{"b":{"c":{}}}}`, "maxContainerDepth"},
		{"entries", `{"a":1,"b":2,"c":3,"d":4}`, "maxObjectEntryCount"},
		{"name length", `{"abcdef":1}`, "maxObjectEntryNameLength"},
		{"elements", `[1,2,3,4,5]`, "maxArrayElementCount"},
		{"string", `{"a":"1234567"}`, "maxStringValueLength"},
		{"string in array", `["1234567"]`, "maxStringValueLength"},
		// A key is not a value: a 6-char key breaks the name limit, not
		// the string one, and values of a 3-entry object are not counted
		// as entries.
		{"malformed", `{"a":1,}`, "invalid JSON"},
		{"trailing", `{"a":1} {"b":2}`, "invalid JSON"},
		{"truncated", `{"a":[1,2`, "invalid JSON"},
	} {
		r := post(t, gw, "application/json; charset=utf-8", c.body)
		if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, c.want) {
			t.Errorf("%s: %d %s, want 400 naming %s", c.name, r.Status, r.Body, c.want)
		}
	}
	if n := len(up.got()); n != 1 {
		t.Fatalf("%d requests reached the upstream, want only the valid one", n)
	}
	// Other content types pass untouched; so do +json types' valid bodies.
	if r := post(t, gw, "text/plain", `{"a":{"b":{"c":{"d":1}}}}`); r.Status != 200 {
		t.Fatalf("text/plain: %d", r.Status)
	}
	if r := post(t, gw, "application/problem+json", `{"a":{"b":{"c":{"d":1}}}}`); r.Status != 400 {
		t.Fatalf("+json type not inspected: %d", r.Status)
	}
}

// A deep-nesting bomb is cut at the limit without reading the rest, and
// an oversized body is refused before it is buffered.
func TestJSONThreatProtectionAttacks(t *testing.T) {
	up := newBodyUpstream(t)
	gw := proxyTo(t, up, "json-threat-protection-flex", `{"maxContainerDepth":64}`)
	bomb := strings.Repeat("[", 1_000_000) + strings.Repeat("]", 1_000_000)
	if r := post(t, gw, "application/json", bomb); r.Status != 400 || !strings.Contains(r.Body, "maxContainerDepth") {
		t.Fatalf("nesting bomb: %d %s", r.Status, r.Body)
	}
	huge := `"` + strings.Repeat("a", policy.MaxInspectedBody) + `"`
	if r := post(t, gw, "application/json", huge); r.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d %s", r.Status, r.Body)
	}
	if len(up.got()) != 0 {
		t.Fatal("an attack reached the upstream")
	}
	// Without limits, any well-formed document passes.
	open := proxyTo(t, up, "json-threat-protection-flex", `{}`)
	if r := post(t, open, "application/json", `{"a":[[[[[[[["x"]]]]]]]]}`); r.Status != 200 {
		t.Fatalf("no limits: %d %s", r.Status, r.Body)
	}
}

func TestXMLThreatProtection(t *testing.T) {
	up := newBodyUpstream(t)
	for _, name := range []string{"xml-threat-protection-flex", "xml-threat-protection"} {
		gw := proxyTo(t, up, name, `{"maxNodeDepth":3,"maxAttributeCountPerElement":2,"maxChildCount":3,"maxTextLength":5,"maxAttributeLength":4,"maxCommentLength":6}`)
		ok := `<?xml version="1.0"?><r xmlns="urn:a" xmlns:b="urn:b" a="1" b:c="2"><x>héllo</x><!--short--><y><z/></y></r>`
		if r := post(t, gw, "application/xml", ok); r.Status != 200 {
			t.Fatalf("%s valid document: %d %s", name, r.Status, r.Body)
		}
		for _, c := range []struct{ name, body, want string }{
			{"depth", `<a><b><c><d/></c></b></a>`, "maxNodeDepth"},
			{"attributes", `<a x="1" y="2" z="3"/>`, "maxAttributeCountPerElement"},
			{"children", `<a><b/><b/><b/><b/></a>`, "maxChildCount"},
			{"text", `<a>123456</a>`, "maxTextLength"},
			{"attribute length", `<a x="12345"/>`, "maxAttributeLength"},
			{"comment", `<a><!-- 1234567 --></a>`, "maxCommentLength"},
			{"mismatched", `<a><b></a></b>`, "invalid XML"},
			{"two roots", `<a/><b/>`, "more than one root"},
			{"billion laughs", `<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><l>&b;</l>`, "entity"},
			{"external entity", `<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>`, "entity"},
			{"undeclared entity", `<r>&x;</r>`, "invalid XML"},
		} {
			r := post(t, gw, "text/xml", c.body)
			if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, c.want) {
				t.Errorf("%s %s: %d %s, want 400 naming %s", name, c.name, r.Status, r.Body, c.want)
			}
		}
	}
	if n := len(up.got()); n != 2 {
		t.Fatalf("%d requests reached the upstream, want the 2 valid ones", n)
	}
	// A deep XML bomb stops at the limit.
	gw := proxyTo(t, up, "xml-threat-protection-flex", `{"maxNodeDepth":100}`)
	var b bytes.Buffer
	for range 200_000 {
		b.WriteString("<a>")
	}
	if r := post(t, gw, "application/soap+xml", b.String()); r.Status != 400 || !strings.Contains(r.Body, "maxNodeDepth") {
		t.Fatalf("deep bomb: %d %s", r.Status, r.Body)
	}
}

func TestThreatProtectionValidation(t *testing.T) {
	for _, c := range []struct{ name, cfg, want string }{
		{"json-threat-protection-flex", `{"maxContainerDepth":-2}`, "config.maxContainerDepth: must be -1 (no limit) or >= 0"},
		{"json-threat-protection-flex", `{"maxArrayElementCount":"ten"}`, "config.maxArrayElementCount: must be an integer"},
		{"xml-threat-protection-flex", `{"maxChildCount":-5}`, "config.maxChildCount: must be -1"},
		{"xml-threat-protection-flex", `{"maxTextLength":1.5}`, "config.maxTextLength: must be an integer"},
	} {
		err := policy.Check(policytest.Policy(c.name, c.cfg))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: error %v, want %q", c.name, c.cfg, err, c.want)
		}
	}
}

func TestIdleTimeoutValidation(t *testing.T) {
	for _, name := range []string{"stream-idle-timeout-flex", "idle-timeout-flex"} {
		for cfg, want := range map[string]string{
			`{}`:                "config.timeout: required",
			`{"timeout":0}`:     "config.timeout: must be > 0",
			`{"timeout":"3s"}`:  "config.timeout: must be a number",
			`{"timeout":1e300}`: "config.timeout: must be > 0 and at most a year",
		} {
			err := policy.Check(policytest.Policy(name, cfg))
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s %s: %v, want %q", name, cfg, err, want)
			}
		}
		if err := policy.Check(policytest.Policy(name, `{"timeout":3}`)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
