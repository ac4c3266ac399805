package policy_test

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/lambdastandin"
	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

const testARN = "arn:aws:lambda:us-east-1:123456789012:function:orders"

// lambdaPayload is what the stand-in's function reads from a wrapped request.
type lambdaPayload struct {
	RawPath         string            `json:"raw_path"`
	Method          string            `json:"method"`
	Headers         map[string]string `json:"headers"`
	Query           map[string]string `json:"query_string_parameters"`
	Body            string            `json:"body"`
	IsBase64Encoded bool              `json:"is_base64_encoded"`
}

// echoFunction answers with what it was sent, in Envoy's response schema.
func echoFunction(inv lambdastandin.Invocation) (int, []byte, bool) {
	var p lambdaPayload
	if err := json.Unmarshal(inv.Payload, &p); err != nil {
		return 200, inv.Payload, false // passthrough: echo the raw payload
	}
	if p.Headers["x-fail"] == "yes" {
		return 200, []byte(`{"errorMessage":"boom","errorType":"Error"}`), true
	}
	out, _ := json.Marshal(map[string]any{
		"status_code":       201,
		"headers":           map[string]string{"x-fn-method": p.Method, "x-fn-path": p.RawPath, "x-fn-q": p.Query["q"], "x-fn-b64": strconv.FormatBool(p.IsBase64Encoded), "content-type": "text/plain"},
		"cookies":           []string{"a=1; HttpOnly", "b=2"},
		"body":              base64.StdEncoding.EncodeToString([]byte("fn saw: " + p.Body)),
		"is_base64_encoded": true,
	})
	return 200, out, false
}

// lambdaGateway runs the policy bound to a Service whose address is the stand-in.
func lambdaGateway(t *testing.T, sa *lambdastandin.Server, cfg map[string]any) *policytest.Gateway {
	t.Helper()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(sa.URL, "http://"))
	p, _ := strconv.Atoi(port)
	svc := &ir.Service{Name: "lambda", Namespace: "default", Protocol: ir.HTTP, Endpoints: []ir.Endpoint{{Host: host, Port: p}}}
	return policytest.NewGateway(t, policy.Env{Service: svc}, policytest.NewUpstream(t), policytest.Policy("native-aws-lambda", cfg))
}

func lambdaCfg(extra map[string]any) map[string]any {
	c := map[string]any{"arn": testARN, "payloadPassthrough": false, "invocationMode": "sync", "authenticationMode": "credentials",
		"credentials": map[string]any{"accessKeyId": "AKIDTEST", "secretAccessKey": "s3cr3t"}}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func startLambda(t *testing.T) *lambdastandin.Server {
	sa := lambdastandin.Start("us-east-1", map[string]string{"AKIDTEST": "s3cr3t", "AKIDFILE": "filesecret", "AKIDROTATED": "rotated", "AKIDENV": "envsecret"}, echoFunction)
	t.Cleanup(sa.Close)
	return sa
}

func TestLambdaWrappedSync(t *testing.T) {
	sa := startLambda(t)
	g := lambdaGateway(t, sa, lambdaCfg(nil))
	r := send(t, "POST", g.URL+"/orders/7?q=a&q=last", "application/json", `{"id":7}`)
	policytest.WantStatus(t, r, 201)
	if r.Body != `fn saw: {"id":7}` {
		t.Fatalf("body %q", r.Body)
	}
	if r.Header.Get("X-Fn-Method") != "POST" || r.Header.Get("X-Fn-Path") != "/orders/7?q=a&q=last" || r.Header.Get("X-Fn-Q") != "last" || r.Header.Get("X-Fn-B64") != "false" {
		t.Fatalf("function saw %v", r.Header)
	}
	if c := r.Header.Values("Set-Cookie"); len(c) != 2 || c[0] != "a=1; HttpOnly" {
		t.Fatalf("cookies %q", c)
	}
	calls := sa.Calls()
	if len(calls) != 1 || calls[0].Function != testARN || calls[0].Type != "RequestResponse" || calls[0].AccessKeyID != "AKIDTEST" {
		t.Fatalf("verified calls %+v (rejected %q)", calls, sa.Rejected())
	}
	if d := g.Rec.All(); len(d) != 1 || d[0] != "native-aws-lambda=allowed" {
		t.Fatalf("decisions %v", d)
	}
}

// A body that is not text travels base64-encoded, both ways.
func TestLambdaBinaryBody(t *testing.T) {
	sa := startLambda(t)
	g := lambdaGateway(t, sa, lambdaCfg(nil))
	bin := string([]byte{0, 1, 2, 0xff, 'x'})
	r := send(t, "PUT", g.URL+"/blob", "application/octet-stream", bin)
	policytest.WantStatus(t, r, 201)
	if r.Header.Get("X-Fn-B64") != "true" {
		t.Fatalf("binary body not flagged base64: %v", r.Header)
	}
	want := "fn saw: " + base64.StdEncoding.EncodeToString([]byte(bin))
	if r.Body != want {
		t.Fatalf("body %q, want %q", r.Body, want)
	}
}

func TestLambdaPassthroughAndAsync(t *testing.T) {
	sa := startLambda(t)
	pass := lambdaGateway(t, sa, lambdaCfg(map[string]any{"payloadPassthrough": true}))
	r := send(t, "POST", pass.URL+"/x", "text/plain", "raw payload")
	policytest.WantStatus(t, r, 200)
	if r.Body != "raw payload" {
		t.Fatalf("passthrough body %q", r.Body)
	}
	async := lambdaGateway(t, sa, lambdaCfg(map[string]any{"invocationMode": "async"}))
	r = send(t, "POST", async.URL+"/x", "application/json", `{"a":1}`)
	policytest.WantStatus(t, r, 202)
	calls := sa.Calls()
	if len(calls) != 2 || string(calls[0].Payload) != "raw payload" || calls[1].Type != "Event" {
		t.Fatalf("calls %+v", calls)
	}
}

// A function error comes back as Lambda sent it, as Envoy returns it.
func TestLambdaFunctionError(t *testing.T) {
	sa := startLambda(t)
	g := lambdaGateway(t, sa, lambdaCfg(nil))
	r := send(t, "GET", g.URL+"/x", "", "", "X-Fail", "yes")
	policytest.WantStatus(t, r, 200)
	if r.Header.Get("X-Amz-Function-Error") != "Unhandled" || !strings.Contains(r.Body, "boom") {
		t.Fatalf("function error not returned as is: %v %q", r.Header, r.Body)
	}
}

// The stand-in refuses a wrong signature, so the passing tests prove the
// gateway signs right; the refusal reaches the client as Lambda sent it.
func TestLambdaWrongSecretRefused(t *testing.T) {
	sa := startLambda(t)
	g := lambdaGateway(t, sa, lambdaCfg(map[string]any{"credentials": map[string]any{"accessKeyId": "AKIDTEST", "secretAccessKey": "guessed"}}))
	r := send(t, "GET", g.URL+"/x", "", "")
	policytest.WantStatus(t, r, 403)
	if rej := sa.Rejected(); len(rej) != 1 || !strings.Contains(rej[0], "signature does not match") {
		t.Fatalf("stand-in rejections %q", rej)
	}
	if len(sa.Calls()) != 0 {
		t.Fatal("a badly signed call was run")
	}
}

func TestLambdaSessionTokenSigned(t *testing.T) {
	sa := startLambda(t)
	g := lambdaGateway(t, sa, lambdaCfg(map[string]any{"credentials": map[string]any{"accessKeyId": "AKIDTEST", "secretAccessKey": "s3cr3t", "sessionToken": "tok-1"}}))
	policytest.WantStatus(t, send(t, "GET", g.URL+"/x", "", ""), 201)
	if c := sa.Calls(); len(c) != 1 || c[0].SessionToken != "tok-1" {
		t.Fatalf("calls %+v rejected %q", c, sa.Rejected())
	}
}

// authenticationMode profile reads the shared credentials file and picks
// up rotated keys without a reload.
func TestLambdaProfileCredentials(t *testing.T) {
	sa := startLambda(t)
	file := filepath.Join(t.TempDir(), "credentials")
	write := func(id, secret string) {
		content := "[default]\naws_access_key_id = nope\naws_secret_access_key = nope\n\n# the gateway's\n[gw]\naws_access_key_id = " + id + "\naws_secret_access_key = " + secret + "\n"
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("AKIDFILE", "filesecret")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", file)
	g := lambdaGateway(t, sa, map[string]any{"arn": testARN, "payloadPassthrough": false, "invocationMode": "sync", "authenticationMode": "profile", "credentialProfile": "gw"})
	policytest.WantStatus(t, send(t, "GET", g.URL+"/x", "", ""), 201)
	write("AKIDROTATED", "rotated-but-longer") // a different size, so the change is seen even within one mtime tick
	write("AKIDROTATED", "rotated")
	deadline := time.Now().Add(30 * time.Second)
	for {
		policytest.WantStatus(t, send(t, "GET", g.URL+"/x", "", ""), 201)
		c := sa.Calls()
		if c[len(c)-1].AccessKeyID == "AKIDROTATED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotated key never used: %+v", c)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A profile the file lacks: an error, with no secret in the answer.
	missing := lambdaGateway(t, sa, map[string]any{"arn": testARN, "authenticationMode": "profile", "credentialProfile": "absent"})
	r := send(t, "GET", missing.URL+"/x", "", "")
	policytest.WantStatus(t, r, 500)
	if strings.Contains(r.Body, "rotated") {
		t.Fatalf("secret in the response: %q", r.Body)
	}
}

func TestLambdaDefaultCredentialsFromEnvironment(t *testing.T) {
	sa := startLambda(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	g := lambdaGateway(t, sa, map[string]any{"arn": testARN, "payloadPassthrough": false, "invocationMode": "sync", "authenticationMode": "default"})
	policytest.WantStatus(t, send(t, "GET", g.URL+"/x", "", ""), 201)
	if c := sa.Calls(); len(c) != 1 || c[0].AccessKeyID != "AKIDENV" {
		t.Fatalf("calls %+v rejected %q", c, sa.Rejected())
	}
}

// What a function returns is checked before it becomes a response.
func TestLambdaHostileResponses(t *testing.T) {
	for name, out := range map[string]string{
		"not json":            `<html>`,
		"status out of range": `{"status_code":99,"body":"x"}`,
		"header injection":    `{"headers":{"x-a":"1\r\nSet-Cookie: evil=1"},"body":"x"}`,
		"bad header name":     `{"headers":{"bad name":"1"},"body":"x"}`,
		"bad base64":          `{"body":"***","is_base64_encoded":true}`,
	} {
		t.Run(name, func(t *testing.T) {
			sa := lambdastandin.Start("us-east-1", map[string]string{"AKIDTEST": "s3cr3t"}, func(lambdastandin.Invocation) (int, []byte, bool) {
				return 200, []byte(out), false
			})
			defer sa.Close()
			g := lambdaGateway(t, sa, lambdaCfg(nil))
			r := send(t, "GET", g.URL+"/x", "", "")
			policytest.WantStatus(t, r, 502)
			policytest.WantErrorBody(t, r, "native-aws-lambda")
			if r.Header.Get("Set-Cookie") != "" {
				t.Fatal("injected header reached the client")
			}
		})
	}
}

func TestLambdaUnreachableAndTooLarge(t *testing.T) {
	sa := startLambda(t)
	g := lambdaGateway(t, sa, lambdaCfg(nil))
	big := strings.Repeat("a", policy.LambdaMaxPayload+1)
	policytest.WantStatus(t, send(t, "POST", g.URL+"/x", "text/plain", big), 413)
	if len(sa.Calls()) != 0 {
		t.Fatal("an oversized payload was sent")
	}
	sa.Close()
	policytest.WantStatus(t, send(t, "GET", g.URL+"/x", "", ""), 502)
}

func TestLambdaConfigErrors(t *testing.T) {
	cases := []struct {
		cfg   map[string]any
		field string
	}{
		{map[string]any{"authenticationMode": "default"}, "config.arn"},
		{map[string]any{"arn": "arn:aws:s3:::bucket", "authenticationMode": "default"}, "config.arn"},
		{map[string]any{"arn": "arn:aws:lambda:us-east-1:1:function:a/../b", "authenticationMode": "default"}, "config.arn"},
		{map[string]any{"arn": testARN}, "config.authenticationMode"},
		{map[string]any{"arn": testARN, "authenticationMode": "iam"}, "config.authenticationMode"},
		{map[string]any{"arn": testARN, "authenticationMode": "default", "invocationMode": "later"}, "config.invocationMode"},
		{map[string]any{"arn": testARN, "authenticationMode": "credentials"}, "config.credentials.accessKeyId"},
		{map[string]any{"arn": testARN, "authenticationMode": "credentials", "credentials": map[string]any{"accessKeyId": "a"}}, "config.credentials.secretAccessKey"},
		{map[string]any{"arn": testARN, "authenticationMode": "default", "payloadPassthrough": "no"}, "config.payloadPassthrough"},
	}
	for _, c := range cases {
		err := policy.Check(policytest.Policy("native-aws-lambda", c.cfg))
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%v: error %v, want one naming %s", c.cfg, err, c.field)
		}
	}
	red := policy.RedactConfig("native-aws-lambda", map[string]any{"credentials": map[string]any{"accessKeyId": "a", "secretAccessKey": "s", "sessionToken": "t"}})
	b, _ := json.Marshal(red)
	if strings.Contains(string(b), `"s"`) || strings.Contains(string(b), `"t"`) {
		t.Fatalf("secrets not redacted: %s", b)
	}
}
