package policy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/policy"
)

// benchJSON is a typical 1 KiB API request body.
var benchJSON = func() string {
	var b strings.Builder
	b.WriteString(`{"order":{"id":"A-1001","customer":{"name":"Jane Doe","email":"jane@example.com"},"items":[`)
	for i := range 8 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"SKU-%04d","qty":%d,"price":%d.99,"tags":["a","b"]}`, i, i+1, 10+i)
	}
	b.WriteString(`],"notes":"leave at the door"}}`)
	return b.String()
}()

var benchXML = func() string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?><order xmlns="urn:shop" id="A-1001"><customer><name>Jane Doe</name><email>jane@example.com</email></customer><items>`)
	for i := range 8 {
		fmt.Fprintf(&b, `<item sku="SKU-%04d" qty="%d"><price>%d.99</price></item>`, i, i+1, 10+i)
	}
	b.WriteString(`</items><!-- note --><notes>leave at the door</notes></order>`)
	return b.String()
}()

// BenchmarkNewPolicies is the per-request cost of issue 13's policies on
// the built-in data plane: the middleware around a handler that reads the
// body and does nothing else (as BenchmarkPolicyOverhead).
func BenchmarkNewPolicies(b *testing.B) {
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "bench-token", "token_type": "Bearer", "expires_in": 3600})
	}))
	defer as.Close()
	introspect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":true,"scope":"read","client_id":"c"}`))
	}))
	defer introspect.Close()
	cases := []struct {
		name, policy string
		cfg          any
		ctype, body  string
	}{
		{"none", "", nil, "", ""},
		{"none/json-body", "", nil, "application/json", benchJSON},
		{"credential-injection-basic-auth-flex", "credential-injection-basic-auth-flex", map[string]any{"username": "u", "password": "p"}, "", ""},
		{"credential-injection-api-key-flex", "credential-injection-api-key-flex", map[string]any{"authType": "apiKey", "apiKey": "k"}, "", ""},
		{"credential-injection-oauth2-flex/cached", "credential-injection-oauth2-flex", map[string]any{"oauthService": as.URL, "clientId": "c", "clientSecret": "s"}, "", ""},
		{"oauth2-token-introspection-flex/cached", "oauth2-token-introspection-flex", map[string]any{"introspectionURL": introspect.URL, "authorizationValue": "Basic x", "consumerBy": "client_id", "scopes": "read"}, "", ""},
		{"json-threat-protection-flex/1KiB", "json-threat-protection-flex", map[string]any{"maxContainerDepth": 10, "maxObjectEntryCount": 50, "maxObjectEntryNameLength": 50, "maxArrayElementCount": 100, "maxStringValueLength": 100}, "application/json", benchJSON},
		{"xml-threat-protection-flex/1KiB", "xml-threat-protection-flex", map[string]any{"maxNodeDepth": 10, "maxAttributeCountPerElement": 5, "maxChildCount": 20, "maxTextLength": 100, "maxAttributeLength": 50, "maxCommentLength": 50}, "application/xml", benchXML},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var h http.Handler = http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				if r.Body != nil {
					_, _ = io.Copy(io.Discard, r.Body)
				}
			})
			if c.policy != "" {
				p := mkPolicy(c.policy, c.cfg)
				d, _ := policy.Lookup(p.Name)
				mw, err := d.Build(policy.Env{API: testAPI()}, p)
				if err != nil {
					b.Fatal(err)
				}
				h = mw(h)
			}
			body := []byte(c.body)
			req := httptest.NewRequest(http.MethodPost, "http://gw/orders", nil)
			req.RemoteAddr = "127.0.0.1:40000"
			req.Header.Set("Authorization", "Bearer bench-token")
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			req = req.WithContext(policy.WithRecorder(req.Context(), nopRecorder{}))
			w := &discardWriter{h: http.Header{}}
			// Warm the token cache outside the timed loop.
			h.ServeHTTP(w, req.Clone(req.Context()))
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r := req.Clone(req.Context())
				if len(body) > 0 {
					r.Body = io.NopCloser(bytes.NewReader(body))
					r.ContentLength = int64(len(body))
				}
				clear(w.h)
				h.ServeHTTP(w, r)
			}
		})
	}
}
