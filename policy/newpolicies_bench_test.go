package policy_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/internal/lambdastandin"
	"github.com/flexgw/flexgw/internal/policytest"
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
// body and does nothing else (as BenchmarkPolicyOverhead); every request
// carries Authorization: Bearer bench-token.
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
	policytest.Bench(b, []policytest.BenchCase{
		{Name: "none", Header: bearer("bench-token")},
		{Name: "none/json-body", Header: append(bearer("bench-token"), "Content-Type", "application/json"), Body: benchJSON},
		{Name: "credential-injection-basic-auth-flex", Policy: "credential-injection-basic-auth-flex", Config: map[string]any{"username": "u", "password": "p"}, Header: bearer("bench-token")},
		{Name: "credential-injection-api-key-flex", Policy: "credential-injection-api-key-flex", Config: map[string]any{"authType": "apiKey", "apiKey": "k"}, Header: bearer("bench-token")},
		{Name: "credential-injection-oauth2-flex/cached", Policy: "credential-injection-oauth2-flex", Config: map[string]any{"oauthService": as.URL, "clientId": "c", "clientSecret": "s"}, Header: bearer("bench-token")},
		{Name: "oauth2-token-introspection-flex/cached", Policy: "oauth2-token-introspection-flex", Config: map[string]any{"introspectionURL": introspect.URL, "authorizationValue": "Basic x", "consumerBy": "client_id", "scopes": "read"}, Header: bearer("bench-token")},
		{Name: "json-threat-protection-flex/1KiB", Policy: "json-threat-protection-flex", Config: map[string]any{"maxContainerDepth": 10, "maxObjectEntryCount": 50, "maxObjectEntryNameLength": 50, "maxArrayElementCount": 100, "maxStringValueLength": 100}, Header: append(bearer("bench-token"), "Content-Type", "application/json"), Body: benchJSON},
		{Name: "xml-threat-protection-flex/1KiB", Policy: "xml-threat-protection-flex", Config: map[string]any{"maxNodeDepth": 10, "maxAttributeCountPerElement": 5, "maxChildCount": 20, "maxTextLength": 100, "maxAttributeLength": 50, "maxCommentLength": 50}, Header: append(bearer("bench-token"), "Content-Type", "application/xml"), Body: benchXML},
		{Name: "spec-validation-flex/1KiB", Policy: "spec-validation-flex", Config: map[string]any{"source": "inline", "spec": orderSpec, "blockOperation": true}, Header: append(bearer("bench-token"), "Content-Type", "application/json"), Body: benchJSON},
		{Name: "native-aws-lambda/1KiB-signed-invocation", Policy: "native-aws-lambda", Config: map[string]any{"arn": "arn:aws:lambda:us-east-1:123456789012:function:orders", "authenticationMode": "credentials",
			"credentials": map[string]any{"accessKeyId": "AKIDBENCH", "secretAccessKey": "bench-secret"}}, Env: policy.Env{Service: lambdaSvc}, Header: append(bearer("bench-token"), "Content-Type", "application/json"), Body: benchJSON},
	})
}
