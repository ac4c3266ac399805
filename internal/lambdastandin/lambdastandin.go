// Package lambdastandin is a stand-in for the AWS Lambda Invoke API
// (POST /2015-03-31/functions/{FunctionName}/invocations), and for any
// other SigV4-authenticated AWS HTTP service (API Gateway's execute-api,
// S3, ...), for tests: AWS cannot be reached from here. It does what the
// real services do before serving a request — it verifies the request's
// AWS Signature Version 4 (or 4A: the ECDSA signature verified with the
// public key the secret derives) by signing the same canonical request again
// with the AWS SDK's signer and the secret key it was given — and answers
// 403 to anything not signed right. A verified request is handed to the
// test's Function (Lambda) or handler (StartService).
package lambdastandin

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go/logging"

	"github.com/flexgw/flexgw/internal/sigv4a"
)

// Invocation is one verified call.
type Invocation struct {
	// Function is the FunctionName path parameter (a name or an ARN).
	Function string
	// Type is X-Amz-Invocation-Type (RequestResponse, Event, DryRun).
	Type         string
	Payload      []byte
	ContentType  string
	AccessKeyID  string
	SessionToken string
}

// Function answers a verified invocation: the HTTP status and payload the
// Invoke API returns, and whether it is a function error
// (X-Amz-Function-Error: Unhandled).
type Function func(inv Invocation) (status int, payload []byte, functionError bool)

// Server is a running stand-in.
type Server struct {
	*httptest.Server
	// Region the stand-in serves; a signature scoped to another is refused.
	Region string

	// service is the signing name the stand-in accepts ("lambda").
	service string
	// handler serves verified requests of a StartService stand-in.
	handler http.Handler

	mu       sync.Mutex
	keys     map[string]string // access key id -> secret
	fn       Function
	calls    []Invocation
	rejected []string
}

// Start starts a stand-in for region that accepts signatures by the given
// access key ids (id -> secret access key).
func Start(region string, keys map[string]string, fn Function) *Server {
	s := &Server{Region: region, service: "lambda", keys: keys, fn: fn}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// StartService starts a stand-in for the AWS service signing as service
// in region: every request must carry a valid SigV4 signature by one of
// keys (the payload signed, or UNSIGNED-PAYLOAD), else it gets 403; a
// verified request (its body intact) goes to h.
func StartService(service, region string, keys map[string]string, h http.Handler) *Server {
	s := &Server{Region: region, service: service, keys: keys, handler: h}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serveSigned))
	return s
}

func (s *Server) serveSigned(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPayload+1))
	if err != nil || len(body) > maxPayload {
		s.refuse(w, http.StatusRequestEntityTooLarge, "payload too large or unreadable")
		return
	}
	if _, err := s.verify(r, body); err != nil {
		s.refuse(w, http.StatusForbidden, err.Error())
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	s.handler.ServeHTTP(w, r)
}

// Calls returns the verified invocations so far.
func (s *Server) Calls() []Invocation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Invocation(nil), s.calls...)
}

// Rejected returns why each refused request was refused.
func (s *Server) Rejected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rejected...)
}

func (s *Server) refuse(w http.ResponseWriter, status int, why string) {
	s.mu.Lock()
	s.rejected = append(s.rejected, why)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", "InvalidSignatureException")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"message":%q}`, why)
}

const maxPayload = 6 << 20

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	fn, ok := strings.CutPrefix(r.URL.Path, "/2015-03-31/functions/")
	fn, ok2 := strings.CutSuffix(fn, "/invocations")
	if !ok || !ok2 || fn == "" || r.Method != http.MethodPost {
		s.refuse(w, http.StatusNotFound, "not the Invoke API: "+r.Method+" "+r.URL.Path)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPayload+1))
	if err != nil || len(body) > maxPayload {
		s.refuse(w, http.StatusRequestEntityTooLarge, "payload too large or unreadable")
		return
	}
	keyID, err := s.verify(r, body)
	if err != nil {
		s.refuse(w, http.StatusForbidden, err.Error())
		return
	}
	inv := Invocation{
		Function: fn, Type: r.Header.Get("X-Amz-Invocation-Type"), Payload: body, ContentType: r.Header.Get("Content-Type"),
		AccessKeyID: keyID, SessionToken: r.Header.Get("X-Amz-Security-Token"),
	}
	if inv.Type == "" {
		inv.Type = "RequestResponse"
	}
	s.mu.Lock()
	s.calls = append(s.calls, inv)
	s.mu.Unlock()
	if inv.Type == "Event" {
		w.WriteHeader(http.StatusAccepted) // the Invoke API's answer to an asynchronous call
		return
	}
	status, out, fnErr := s.fn(inv)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	if fnErr {
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
	}
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

// verify checks r's SigV4 or SigV4A Authorization header and returns its
// key id.
func (s *Server) verify(r *http.Request, body []byte) (string, error) {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	v4a := false
	if !ok {
		rest, v4a = strings.CutPrefix(auth, sigv4a.Algorithm+" ")
	}
	if !ok && !v4a {
		return "", fmt.Errorf("missing or non-SigV4 Authorization header")
	}
	var cred, signed, sig string
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			sig = v
		}
	}
	scope := strings.Split(cred, "/")
	if v4a {
		// SigV4A: no region in the scope; the signed region set names it.
		if len(scope) == 4 {
			scope = []string{scope[0], scope[1], r.Header.Get(sigv4a.RegionSetHeader), scope[2], scope[3]}
		} else {
			scope = nil
		}
	}
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return "", fmt.Errorf("malformed credential scope %q", cred)
	}
	keyID, day, region, service := scope[0], scope[1], scope[2], scope[3]
	secret, known := s.keys[keyID]
	if !known {
		return "", fmt.Errorf("unknown access key id %q", keyID)
	}
	if v4a {
		if !inRegionSet(region, s.Region) {
			return "", fmt.Errorf("region set %q does not include %s", region, s.Region)
		}
		region = s.Region
	}
	if service != s.service || region != s.Region {
		return "", fmt.Errorf("signature scoped to %s/%s, want %s/%s", service, region, s.service, s.Region)
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || at.Format("20060102") != day {
		return "", fmt.Errorf("X-Amz-Date %q does not match the credential scope", r.Header.Get("X-Amz-Date"))
	}
	// AWS refuses signatures more than 5 minutes off.
	if d := time.Since(at); d > 5*time.Minute || d < -5*time.Minute {
		return "", fmt.Errorf("signature time %s is too far from now", at)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h == "UNSIGNED-PAYLOAD" && s.service != "lambda" {
		hash = h // the payload is not part of the signature
	} else if h != "" && h != hash {
		return "", fmt.Errorf("X-Amz-Content-Sha256 does not match the payload")
	}
	names := strings.Split(signed, ";")
	if !contains(names, "host") || !contains(names, "x-amz-date") {
		return "", fmt.Errorf("SignedHeaders %q must include host and x-amz-date", signed)
	}
	if v4a && !contains(names, "x-amz-region-set") {
		return "", fmt.Errorf("SignedHeaders %q must include x-amz-region-set", signed)
	}
	if r.Header.Get("X-Amz-Security-Token") != "" && !contains(names, "x-amz-security-token") {
		return "", fmt.Errorf("the session token is not signed")
	}
	// Rebuild the request as signed: only the signed headers, the same
	// URL, method, host and length; sign it again and compare.
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	again, err := http.NewRequest(r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	// The path exactly as received: the signer escapes it again (S3 not).
	again.URL.Opaque = "//" + r.Host + r.URL.EscapedPath()
	again.Host = r.Host
	again.ContentLength = r.ContentLength
	for _, n := range names {
		if n == "host" || n == "content-length" {
			continue
		}
		vs := r.Header.Values(n)
		if len(vs) == 0 {
			return "", fmt.Errorf("signed header %q is missing", n)
		}
		again.Header[http.CanonicalHeaderKey(n)] = vs
	}
	creds := aws.Credentials{AccessKeyID: keyID, SecretAccessKey: secret, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	if v4a {
		return keyID, verifyV4A(r, again, creds, hash, service, at, sig)
	}
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = strings.HasPrefix(service, "s3") })
	if err := signer.SignHTTP(r.Context(), creds, again, hash, service, region, at); err != nil {
		return "", err
	}
	want := again.Header.Get("Authorization")
	_, wantSig, _ := strings.Cut(want, "Signature=")
	if subtle.ConstantTimeCompare([]byte(wantSig), []byte(sig)) != 1 {
		return "", fmt.Errorf("signature does not match")
	}
	return keyID, nil
}

// verifyV4A checks a SigV4A signature: the canonical request is SigV4's,
// so the AWS SDK's SigV4 signer computes it (its signing log hands it
// over), independently of the signer under test; the string to sign is
// SigV4A's, and the ECDSA signature must verify with the public key the
// secret derives.
func verifyV4A(r, again *http.Request, creds aws.Credentials, hash, service string, at time.Time, sig string) error {
	var canonical string
	signer := v4.NewSigner(func(o *v4.SignerOptions) {
		o.DisableURIPathEscaping = strings.HasPrefix(service, "s3")
		o.LogSigning = true
		o.Logger = logging.LoggerFunc(func(_ logging.Classification, _ string, v ...any) {
			if len(v) > 0 {
				canonical, _ = v[0].(string)
			}
		})
	})
	if err := signer.SignHTTP(r.Context(), creds, again, hash, service, "region-unused", at); err != nil {
		return err
	}
	if canonical == "" {
		return fmt.Errorf("the SDK signer logged no canonical request")
	}
	sts := sigv4a.StringToSign(at, sigv4a.Scope(at, service), canonical)
	if err := sigv4a.Verify(creds.AccessKeyID, creds.SecretAccessKey, sts, sig); err != nil {
		return fmt.Errorf("signature does not match (%w)", err)
	}
	return nil
}

// inRegionSet reports whether a SigV4A region set (regions and
// wildcards, comma-separated) covers region.
func inRegionSet(set, region string) bool {
	for _, r := range strings.Split(set, ",") {
		r = strings.TrimSpace(r)
		if p, ok := strings.CutSuffix(r, "*"); ok && strings.HasPrefix(region, p) || r == region {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
