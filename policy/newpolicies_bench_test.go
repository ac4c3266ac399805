package policy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/internal/lambdastandin"
	"github.com/flexgw/flexgw/ir"
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
	// The Lambda stand-in verifies each SigV4 signature, as AWS would: the
	// native-aws-lambda case is a whole signed invocation over loopback.
	lambda := lambdastandin.Start("us-east-1", map[string]string{"AKIDBENCH": "bench-secret"}, func(lambdastandin.Invocation) (int, []byte, bool) {
		return 200, []byte(`{"status_code":200,"body":"ok"}`), false
	})
	defer lambda.Close()
	lhost, lport, _ := net.SplitHostPort(strings.TrimPrefix(lambda.URL, "http://"))
	lp, _ := strconv.Atoi(lport)
	lambdaSvc := &ir.Service{Name: "lambda", Namespace: "default", Protocol: ir.HTTP, Endpoints: []ir.Endpoint{{Host: lhost, Port: lp}}}
	orderSpec := `{"openapi":"3.0.2","info":{"title":"orders","version":"1"},"paths":{"/orders":{"post":{
  "requestBody":{"required":true,"content":{"application/json":{"schema":{"type":"object","required":["order"],"properties":{"order":{"type":"object",
    "required":["id","items"],"properties":{"id":{"type":"string","pattern":"^A-[0-9]+$"},"customer":{"type":"object"},"notes":{"type":"string"},
    "items":{"type":"array","maxItems":100,"items":{"type":"object","required":["sku","qty"],"properties":{"sku":{"type":"string"},"qty":{"type":"integer","minimum":1},"price":{"type":"number"},"tags":{"type":"array","items":{"type":"string"}}}}}}}}}}}},
  "responses":{"200":{"description":"ok"}}}}}}`
	cases := []struct {
		name, policy string
		cfg          any
		ctype, body  string
		svc          *ir.Service
	}{
		{"none", "", nil, "", "", nil},
		{"none/json-body", "", nil, "application/json", benchJSON, nil},
		{"credential-injection-basic-auth-flex", "credential-injection-basic-auth-flex", map[string]any{"username": "u", "password": "p"}, "", "", nil},
		{"credential-injection-api-key-flex", "credential-injection-api-key-flex", map[string]any{"authType": "apiKey", "apiKey": "k"}, "", "", nil},
		{"credential-injection-oauth2-flex/cached", "credential-injection-oauth2-flex", map[string]any{"oauthService": as.URL, "clientId": "c", "clientSecret": "s"}, "", "", nil},
		{"oauth2-token-introspection-flex/cached", "oauth2-token-introspection-flex", map[string]any{"introspectionURL": introspect.URL, "authorizationValue": "Basic x", "consumerBy": "client_id", "scopes": "read"}, "", "", nil},
		{"json-threat-protection-flex/1KiB", "json-threat-protection-flex", map[string]any{"maxContainerDepth": 10, "maxObjectEntryCount": 50, "maxObjectEntryNameLength": 50, "maxArrayElementCount": 100, "maxStringValueLength": 100}, "application/json", benchJSON, nil},
		{"xml-threat-protection-flex/1KiB", "xml-threat-protection-flex", map[string]any{"maxNodeDepth": 10, "maxAttributeCountPerElement": 5, "maxChildCount": 20, "maxTextLength": 100, "maxAttributeLength": 50, "maxCommentLength": 50}, "application/xml", benchXML, nil},
		{"spec-validation-flex/1KiB", "spec-validation-flex", map[string]any{"source": "inline", "spec": orderSpec, "blockOperation": true}, "application/json", benchJSON, nil},
		{"native-aws-lambda/1KiB-signed-invocation", "native-aws-lambda", map[string]any{"arn": "arn:aws:lambda:us-east-1:123456789012:function:orders", "authenticationMode": "credentials",
			"credentials": map[string]any{"accessKeyId": "AKIDBENCH", "secretAccessKey": "bench-secret"}}, "application/json", benchJSON, lambdaSvc},
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
				mw, err := d.Build(policy.Env{API: testAPI(), Service: c.svc}, p)
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
			// Warm the token cache outside the timed loop, and make sure
			// the measured request is one the policy admits.
			warm := &recorder{}
			wr := req.Clone(policy.WithRecorder(req.Context(), warm))
			if len(body) > 0 {
				wr.Body = io.NopCloser(bytes.NewReader(body))
				wr.ContentLength = int64(len(body))
			}
			h.ServeHTTP(w, wr)
			if d := warm.All(); c.policy != "" && (len(d) == 0 || !strings.HasSuffix(d[len(d)-1], "=allowed")) {
				b.Fatalf("the benchmarked request is not admitted: %v", d)
			}
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
