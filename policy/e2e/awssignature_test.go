package e2e_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/internal/lambdastandin"
	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/internal/testutil"
)

// native-aws-signature-flex through the built-in data plane, against a
// stand-in for an AWS service that verifies every request's SigV4
// signature with the AWS SDK's signer: what is verified is the request
// as it arrived, so the signature must cover the path after the route's
// capture-group rewrite, the endpoint's Host, the body and the headers as
// sent.
func TestAWSSignatureSignsTheRequestAsSent(t *testing.T) {
	keys := map[string]string{"AKIDINLINE": "inline-secret", "AKIDFILE": "file-secret"}
	aws := lambdastandin.StartService("execute-api", "eu-west-1", keys, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s?%s token=%s body=%s", r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("X-Amz-Security-Token"), b)
	}))
	t.Cleanup(aws.Close)
	credFile := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(credFile, []byte("[default]\naws_access_key_id = nobody\naws_secret_access_key = x\n[uploads]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := listen(t, "http")
	api := func(name, svc string, cfg any) []testutil.Resource {
		return []testutil.Resource{
			{Kind: "ApiInstance", Name: name, Spec: "address: " + addr + "/" + name + "\n"},
			testutil.Service(svc, aws.URL),
			{Kind: "PolicyBinding", Name: name + "-route", Spec: fmt.Sprintf(`
targetRef:
  kind: ApiInstance
  name: %s
policyRef:
  name: route
rules:
  - path: /v1/(.*)
config:
  destinationRef:
    name: %s
  destinationPath: /stage/items/`, name, svc)},
			testutil.Binding(name+"-sign", "Service", svc, testutil.Policy{Name: "native-aws-signature-flex", Config: cfg}),
		}
	}
	var rs []testutil.Resource
	rs = append(rs, api("inline", "aws-inline", map[string]any{"serviceName": "execute-api", "region": "eu-west-1", "signingAlgorithm": "AWS_SIGV4",
		"authenticationMode": "inline", "matchExcludedHeaders": []string{"x-changed-later"},
		"inlineCredentialProvider": map[string]string{"accessKeyId": "AKIDINLINE", "secretAccessKey": "inline-secret", "sessionToken": "session-1"}})...)
	rs = append(rs, api("file", "aws-file", map[string]any{"serviceName": "execute-api", "region": "eu-west-1", "useUnsignedPayload": true,
		"authenticationMode": "file", "credentialsFileProvider": map[string]string{"credentialsFile": credFile, "profile": "uploads"}})...)
	rs = append(rs, api("wrongkey", "aws-wrong", map[string]any{"serviceName": "execute-api", "region": "eu-west-1",
		"authenticationMode": "inline", "inlineCredentialProvider": map[string]string{"accessKeyId": "AKIDINLINE", "secretAccessKey": "not-the-secret"}})...)
	v4a := func(secret, regions string) map[string]any {
		return map[string]any{"serviceName": "execute-api", "region": regions, "signingAlgorithm": "AWS_SIGV4A",
			"authenticationMode": "inline", "inlineCredentialProvider": map[string]string{"accessKeyId": "AKIDINLINE", "secretAccessKey": secret, "sessionToken": "session-a"}}
	}
	rs = append(rs, api("sigv4a", "aws-v4a", v4a("inline-secret", "us-east-1, eu-*"))...)
	rs = append(rs, api("v4awrongkey", "aws-v4a-wrong", v4a("not-the-secret", "*"))...)
	rs = append(rs, api("v4aotherregion", "aws-v4a-other", v4a("inline-secret", "us-east-1,ap-south-1"))...)
	s := load(t, rs...)
	gw := start(t, s, nil, nil)
	addrOf := func(name string) string { return gw + "/" + name }
	send := func(method, url, body string, chunked bool, hdr ...string) (int, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
			if chunked {
				rd = io.MultiReader(rd) // no length: sent chunked
			}
		}
		r := policytest.Send(t, method, url, rd, hdr...)
		return r.Status, r.Body
	}

	// Inline keys with a session token, a signed payload (read whole,
	// sent with its length even when the client chunked it), a client
	// Authorization replaced, an escaped path and a query.
	code, body := send("PUT", addrOf("inline")+"/v1/a%20b?x=1&y=two", `{"n":1}`, true, "Authorization", "Bearer client", "X-Changed-Later", "v")
	if code != 200 || body != `PUT /stage/items/a%20b?x=1&y=two token=session-1 body={"n":1}` {
		t.Fatalf("inline: %d %q (stand-in refused: %q)", code, body, aws.Rejected())
	}
	// A credentials file profile, UNSIGNED-PAYLOAD, a streamed body.
	big := strings.Repeat("z", 64<<10)
	code, body = send("POST", addrOf("file")+"/v1/upload", big, true)
	if code != 200 || body != "POST /stage/items/upload? token= body="+big {
		t.Fatalf("file profile: %d %.120q (stand-in refused: %q)", code, body, aws.Rejected())
	}
	// GET without a body.
	if code, body = send("GET", addrOf("inline")+"/v1/list", "", false); code != 200 {
		t.Fatalf("GET: %d %q (stand-in refused: %q)", code, body, aws.Rejected())
	}
	// The wrong secret: the service refuses the signature (the policy has
	// no status of its own, as Flex's page says).
	before := len(aws.Rejected())
	if code, _ = send("GET", addrOf("wrongkey")+"/v1/list", "", false); code != 403 || len(aws.Rejected()) != before+1 {
		t.Fatalf("wrong secret: %d, rejections %q", code, aws.Rejected())
	}
	if r := aws.Rejected(); !strings.Contains(r[len(r)-1], "signature does not match") {
		t.Fatalf("wrong secret refused for %q", r[len(r)-1])
	}

	// SigV4A: the same request signed with the ECDSA key the secret
	// derives, for a region set that covers the service's region; the
	// stand-in verifies it with the public key.
	code, body = send("PUT", addrOf("sigv4a")+"/v1/a%20b?x=1&y=two", `{"n":2}`, true, "Authorization", "Bearer client")
	if code != 200 || body != `PUT /stage/items/a%20b?x=1&y=two token=session-a body={"n":2}` {
		t.Fatalf("SigV4A: %d %q (stand-in refused: %q)", code, body, aws.Rejected())
	}
	for name, why := range map[string]string{"v4awrongkey": "signature does not match", "v4aotherregion": "does not include eu-west-1"} {
		before := len(aws.Rejected())
		if code, _ = send("GET", addrOf(name)+"/v1/list", "", false); code != 403 || len(aws.Rejected()) != before+1 {
			t.Fatalf("SigV4A %s: %d, rejections %q", name, code, aws.Rejected())
		}
		if r := aws.Rejected(); !strings.Contains(r[len(r)-1], why) {
			t.Fatalf("SigV4A %s refused for %q, want %q", name, r[len(r)-1], why)
		}
	}
}

// native-aws-lambda bound to an API whose routes go to different
// services: each invocation goes to the service of the request's route,
// as Envoy's aws_lambda filter sends it through the router (not to
// Lambda's regional endpoint).
func TestLambdaInvokesTheRoutesService(t *testing.T) {
	keys := map[string]string{"AKIDROUTES": "routes-secret"}
	var stands []*lambdastandin.Server
	for _, name := range []string{"one", "two"} {
		s := lambdastandin.Start("us-east-1", keys, func(inv lambdastandin.Invocation) (int, []byte, bool) {
			return 200, []byte(`{"status_code":200,"body":"` + name + `"}`), false
		})
		t.Cleanup(s.Close)
		stands = append(stands, s)
	}
	addr := listen(t, "http")
	s := load(t, testutil.Resource{Kind: "ApiInstance", Name: "lambdas", Spec: fmt.Sprintf(`
address: %s
services:
  one:
    address: %s
    routes:
      - rules:
          - path: /one(/.*)
  two:
    address: %s
    routes:
      - rules:
          - path: /two(/.*)
policies:
  - policyRef:
      name: native-aws-lambda
    config:
      arn: arn:aws:lambda:us-east-1:123456789012:function:orders
      payloadPassthrough: false
      invocationMode: sync
      authenticationMode: credentials
      credentials:
        accessKeyId: AKIDROUTES
        secretAccessKey: routes-secret
`, addr, stands[0].URL, stands[1].URL)})
	gw := start(t, s, nil, nil)
	for i, name := range []string{"one", "two"} {
		res, err := http.Get(gw + "/" + name + "/x")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(b) != name || len(stands[i].Calls()) != 1 {
			t.Fatalf("/%s: %d %q, calls %d (refused %q)", name, res.StatusCode, b, len(stands[i].Calls()), stands[i].Rejected())
		}
	}
}
