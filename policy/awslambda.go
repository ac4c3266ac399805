package policy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"golang.org/x/net/http/httpguts"

	"github.com/flexgw/flexgw/ir"
)

// lambdaConfig is native-aws-lambda's configuration, as Flex's AWS Lambda
// page lists it.
type lambdaConfig struct {
	ARN                string   `json:"arn"`
	PayloadPassthrough bool     `json:"payloadPassthrough"`
	InvocationMode     string   `json:"invocationMode"`
	AuthenticationMode string   `json:"authenticationMode"`
	CredentialProfile  string   `json:"credentialProfile"`
	Credentials        *awsKeys `json:"credentials"`
}

// awsKeys are inline AWS credentials, as the AWS policies spell them.
type awsKeys struct {
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
	SessionToken    string `json:"sessionToken"`
}

// awsCredentials is an AWS policy's credential source: static keys when
// set, else the profile of a credentials file when profile is set (path
// "" is the SDKs' file, re-read when it changes), else the default chain.
func awsCredentials(static *aws.Credentials, path, profile string) func() (aws.Credentials, error) {
	if static != nil {
		c := *static
		return func() (aws.Credentials, error) { return c, nil }
	}
	f := &credentialsFile{}
	if profile != "" {
		return func() (aws.Credentials, error) {
			if path == "" {
				return f.get(sharedCredentialsPath(), profile)
			}
			return f.get(path, profile)
		}
	}
	return func() (aws.Credentials, error) { return defaultCredentials(f) }
}

// Authentication modes: Envoy's aws_lambda filter takes inline
// credentials, a credentials-file profile, or its default provider chain.
const (
	lambdaAuthDefault     = "default"
	lambdaAuthProfile     = "profile"
	lambdaAuthCredentials = "credentials"
)

// LambdaMaxPayload is the largest request body the policy sends, and the
// largest function response it reads: Lambda's own limit for a
// synchronous invocation (6 MB).
const LambdaMaxPayload = 6 << 20

// lambdaTimeout bounds one invocation.
const lambdaTimeout = 30 * time.Second

type awsLambda struct{}

func init() { Register(awsLambda{}) }

func (awsLambda) Name() string { return "native-aws-lambda" }

// compiledLambda is one binding's checked configuration.
type compiledLambda struct {
	arn, region, partition, function string
	passthrough, async               bool
	mode, profile                    string
	static                           *aws.Credentials
}

func parseLambda(raw json.RawMessage) (*compiledLambda, error) {
	var c lambdaConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	if c.ARN == "" {
		return nil, fieldErr("arn", "required: arn:<partition>:lambda:<region>:<account-number>:function:<function-name>")
	}
	// arn:partition:lambda:region:account:function:name[:qualifier]
	parts := strings.Split(c.ARN, ":")
	if len(parts) < 7 || len(parts) > 8 || parts[0] != "arn" || parts[2] != "lambda" || parts[5] != "function" ||
		parts[1] == "" || parts[3] == "" || parts[4] == "" || parts[6] == "" {
		return nil, fieldErr("arn", "must be arn:<partition>:lambda:<region>:<account-number>:function:<function-name>, got %q", c.ARN)
	}
	for _, p := range parts {
		if strings.ContainsAny(p, "/?#% ") {
			return nil, fieldErr("arn", "must not contain '/', '?', '#', '%%' or spaces, got %q", c.ARN)
		}
	}
	out := &compiledLambda{arn: c.ARN, partition: parts[1], region: parts[3], function: parts[6], passthrough: c.PayloadPassthrough}
	switch strings.ToLower(c.InvocationMode) {
	case "", "sync", "synchronous":
	case "async", "asynchronous":
		out.async = true
	default:
		return nil, fieldErr("invocationMode", "must be sync or async, got %q", c.InvocationMode)
	}
	out.mode = strings.ToLower(c.AuthenticationMode)
	switch out.mode {
	case "":
		return nil, fieldErr("authenticationMode", "required: default (environment, then the credentials file), profile (credentialProfile in the credentials file) or credentials (inline)")
	case lambdaAuthDefault:
	case lambdaAuthProfile:
		out.profile = c.CredentialProfile
		if out.profile == "" {
			out.profile = "default"
		}
	case lambdaAuthCredentials:
		cr := c.Credentials
		if cr == nil || cr.AccessKeyID == "" {
			return nil, fieldErr("credentials.accessKeyId", "required when authenticationMode is credentials")
		}
		if cr.SecretAccessKey == "" {
			return nil, fieldErr("credentials.secretAccessKey", "required when authenticationMode is credentials")
		}
		out.static = &aws.Credentials{AccessKeyID: cr.AccessKeyID, SecretAccessKey: cr.SecretAccessKey, SessionToken: cr.SessionToken, Source: "native-aws-lambda config"}
	default:
		return nil, fieldErr("authenticationMode", "must be default, profile or credentials, got %q", c.AuthenticationMode)
	}
	return out, nil
}

// Validate implements Definition.
func (awsLambda) Validate(raw json.RawMessage) error {
	_, err := parseLambda(raw)
	return err
}

// SecretFields implements Secrets.
func (awsLambda) SecretFields() []string {
	return []string{"credentials.secretAccessKey", "credentials.sessionToken"}
}

// lambdaTarget is one place invocations go, with its client and weight.
type lambdaTarget struct {
	base   *url.URL
	client *http.Client
	weight uint32
}

// lambdaTargets are where invocations go, as Envoy's aws_lambda filter
// sends them through the router: to the Service the policy is bound to
// (Flex applies it as an outbound policy on the Lambda upstream), else to
// the destinations of the request's route (each by its weight), else to
// the API's only service, else to Lambda's regional endpoint.
func lambdaTargets(env Env, c *compiledLambda) ([]lambdaTarget, error) {
	type dest struct {
		svc    *ir.Service
		weight uint32
	}
	var ds []dest
	switch {
	case env.Service != nil:
		ds = []dest{{env.Service, 1}}
	case env.Route != nil && env.Snapshot != nil:
		for _, d := range env.Route.Destinations {
			if s := env.Snapshot.Service(d.Service); s != nil && len(s.Endpoints) > 0 {
				ds = append(ds, dest{s, max(d.Weight, 1)})
			}
		}
	case env.API != nil && env.Snapshot != nil:
		var only *ir.Service
		for _, rt := range env.API.Routes {
			for _, d := range rt.Destinations {
				s := env.Snapshot.Service(d.Service)
				if s == nil || (only != nil && s != only) {
					only = nil
					goto done
				}
				only = s
			}
		}
	done:
		if only != nil {
			ds = []dest{{only, 1}}
		}
	}
	var out []lambdaTarget
	for _, d := range ds {
		if len(d.svc.Endpoints) == 0 {
			continue
		}
		scheme := "http"
		if d.svc.Protocol == ir.HTTPS {
			scheme = "https"
		}
		client, err := PolicyCallClient(env, lambdaTimeout)
		if err != nil {
			return nil, err
		}
		if d.svc.TLS != nil {
			tc, err := PolicyCallTLSConfig(d.svc.TLS)
			if err != nil {
				return nil, fmt.Errorf("service %s tls: %w", d.svc.Key(), err)
			}
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = tc
			client = &http.Client{Timeout: lambdaTimeout, Transport: tr}
		}
		out = append(out, lambdaTarget{base: &url.URL{Scheme: scheme, Host: d.svc.Endpoints[0].Address()}, client: client, weight: d.weight})
	}
	if len(out) > 0 {
		return out, nil
	}
	domain := "amazonaws.com"
	if strings.HasPrefix(c.partition, "aws-cn") {
		domain = "amazonaws.com.cn"
	}
	client, err := PolicyCallClient(env, lambdaTimeout)
	if err != nil {
		return nil, err
	}
	return []lambdaTarget{{base: &url.URL{Scheme: "https", Host: "lambda." + c.region + "." + domain}, client: client, weight: 1}}, nil
}

// lambdaInvoker invokes one binding's function.
type lambdaInvoker struct {
	c       *compiledLambda
	targets []lambdaTarget
	total   uint32
	signer  *v4.Signer
	creds   func() (aws.Credentials, error)
	log     *slog.Logger
}

// pick chooses a target by weight, as the router picks a weighted cluster.
func (inv *lambdaInvoker) pick() lambdaTarget {
	if len(inv.targets) == 1 {
		return inv.targets[0]
	}
	n := rand.Uint32N(inv.total)
	for _, t := range inv.targets {
		if n < t.weight {
			return t
		}
		n -= t.weight
	}
	return inv.targets[len(inv.targets)-1]
}

// Build implements Definition.
func (d awsLambda) Build(env Env, p *ir.Policy) (Middleware, error) {
	c, err := parseLambda(p.Config)
	if err != nil {
		return nil, err
	}
	targets, err := lambdaTargets(env, c)
	if err != nil {
		return nil, err
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	inv := &lambdaInvoker{c: c, targets: targets, signer: v4.NewSigner(), log: log.With("component", "policy", "policy", d.Name(), "binding", p.Binding)}
	for _, t := range targets {
		inv.total += t.weight
	}
	inv.creds = awsCredentials(c.static, "", c.profile)
	return func(http.Handler) http.Handler { return inv }, nil
}

// ServeHTTP answers the request with the function's response: the request
// never reaches another upstream.
func (inv *lambdaInvoker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const name = "native-aws-lambda"
	body, err := readCapped(r.Body, LambdaMaxPayload)
	if err != nil {
		if errors.Is(err, errBodyTooLarge) {
			deny(w, r, name, Denied, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over the %d bytes a Lambda invocation takes", LambdaMaxPayload))
			return
		}
		deny(w, r, name, Error, http.StatusBadRequest, "reading the request body: "+err.Error())
		return
	}
	payload := body
	if !inv.c.passthrough {
		if payload, err = lambdaRequestJSON(r, body); err != nil {
			deny(w, r, name, Error, http.StatusInternalServerError, "building the Lambda payload: "+err.Error())
			return
		}
	}
	creds, err := inv.creds()
	if err != nil {
		inv.log.LogAttrs(r.Context(), slog.LevelError, "no AWS credentials", slog.String("error", err.Error()))
		deny(w, r, name, Error, http.StatusInternalServerError, "no AWS credentials for the Lambda invocation (see the gateway log)")
		return
	}
	target := inv.pick()
	u := *target.base
	u.Path = "/2015-03-31/functions/" + inv.c.arn + "/invocations"
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, u.String(), bytes.NewReader(payload))
	if err != nil {
		deny(w, r, name, Error, http.StatusInternalServerError, err.Error())
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if inv.c.passthrough {
		if ct := r.Header.Get("Content-Type"); ct != "" {
			req.Header.Set("Content-Type", ct)
		}
	}
	if inv.c.async {
		req.Header.Set("X-Amz-Invocation-Type", "Event")
	} else {
		req.Header.Set("X-Amz-Invocation-Type", "RequestResponse")
	}
	sum := sha256.Sum256(payload)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	if err := inv.signer.SignHTTP(r.Context(), creds, req, hash, "lambda", inv.c.region, time.Now()); err != nil {
		deny(w, r, name, Error, http.StatusInternalServerError, "signing the Lambda invocation: "+err.Error())
		return
	}
	res, err := target.client.Do(req)
	if err != nil {
		inv.log.LogAttrs(r.Context(), slog.LevelWarn, "invoking the Lambda function", slog.String("arn", inv.c.arn), slog.String("error", err.Error()))
		deny(w, r, name, Error, http.StatusBadGateway, "the Lambda function could not be invoked")
		return
	}
	defer res.Body.Close()
	out, err := readCapped(res.Body, LambdaMaxPayload)
	if err != nil {
		deny(w, r, name, Error, http.StatusBadGateway, "reading the Lambda response: "+err.Error())
		return
	}
	Decide(r, name, Allowed)
	// Errors (>= 300, or a function error) and passthrough or async
	// invocations are returned as Lambda sent them, as Envoy does.
	if inv.c.passthrough || inv.c.async || res.StatusCode >= 300 || res.Header.Get("X-Amz-Function-Error") != "" {
		copyLambdaHeaders(w.Header(), res.Header)
		w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		w.WriteHeader(res.StatusCode)
		_, _ = w.Write(out)
		return
	}
	if err := writeLambdaJSON(w, out); err != nil {
		inv.log.LogAttrs(r.Context(), slog.LevelWarn, "the Lambda response is not the expected JSON", slog.String("arn", inv.c.arn), slog.String("error", err.Error()))
		deny(w, r, name, Error, http.StatusBadGateway, "the Lambda response is not valid: "+err.Error())
	}
}

// copyLambdaHeaders passes a Lambda response's headers on, without the
// ones describing the connection or the body (the gateway sets those).
func copyLambdaHeaders(dst, src http.Header) {
	for k, vs := range src {
		switch http.CanonicalHeaderKey(k) {
		case "Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length", "Upgrade", "Trailer", "Te", "Proxy-Connection":
			continue
		}
		dst[k] = vs
	}
}

func readCapped(rd io.Reader, limit int64) ([]byte, error) {
	if rd == nil || rd == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(&capReader{r: rd, left: limit})
	return b, err
}

// lambdaRequest is the JSON an HTTP request becomes when payloadPassthrough
// is false: the schema of Envoy's aws_lambda filter.
type lambdaRequest struct {
	RawPath         string            `json:"raw_path"`
	Method          string            `json:"method"`
	Headers         map[string]string `json:"headers"`
	QueryParameters map[string]string `json:"query_string_parameters"`
	Body            string            `json:"body"`
	IsBase64Encoded bool              `json:"is_base64_encoded"`
}

// textualBody reports whether Envoy sends a body of this content type as
// text (anything else is base64).
func textualBody(ct string) bool {
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"), mt == "application/json", mt == "application/xml", mt == "application/javascript":
		return true
	}
	return false
}

func lambdaRequestJSON(r *http.Request, body []byte) ([]byte, error) {
	lr := lambdaRequest{RawPath: r.URL.RequestURI(), Method: r.Method, Headers: make(map[string]string, len(r.Header)+1), QueryParameters: map[string]string{}}
	for k, vs := range r.Header {
		lr.Headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	if r.Host != "" {
		lr.Headers[":authority"] = r.Host
	}
	for k, vs := range r.URL.Query() {
		if len(vs) > 0 {
			lr.QueryParameters[k] = vs[len(vs)-1] // the last one wins
		}
	}
	if len(body) > 0 {
		if textualBody(r.Header.Get("Content-Type")) {
			lr.Body = string(body)
		} else {
			lr.Body = base64.StdEncoding.EncodeToString(body)
			lr.IsBase64Encoded = true
		}
	}
	return json.Marshal(lr)
}

// lambdaResponse is the JSON a function returns to shape the HTTP response.
type lambdaResponse struct {
	StatusCode      *int              `json:"status_code"`
	Headers         map[string]string `json:"headers"`
	Cookies         []string          `json:"cookies"`
	Body            string            `json:"body"`
	IsBase64Encoded bool              `json:"is_base64_encoded"`
}

// writeLambdaJSON writes the HTTP response a function's JSON describes.
// Everything in it is checked: it is the function's output, not trusted.
func writeLambdaJSON(w http.ResponseWriter, out []byte) error {
	var lr lambdaResponse
	if err := json.Unmarshal(out, &lr); err != nil {
		return fmt.Errorf("not the JSON response object: %w", err)
	}
	status := http.StatusOK
	if lr.StatusCode != nil {
		status = *lr.StatusCode
		if status < 200 || status > 599 {
			return fmt.Errorf("status_code %d is not a final HTTP status", status)
		}
	}
	body := []byte(lr.Body)
	if lr.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(lr.Body); err != nil {
			return fmt.Errorf("body: not base64: %w", err)
		}
	}
	h := w.Header()
	for k, v := range lr.Headers {
		if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
			return fmt.Errorf("headers: %q is not a valid header", k)
		}
		switch http.CanonicalHeaderKey(k) {
		case "Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length", "Upgrade", "Trailer", "Te", "Proxy-Connection":
			continue
		}
		h.Set(k, v)
	}
	for _, c := range lr.Cookies {
		if !httpguts.ValidHeaderFieldValue(c) {
			return errors.New("cookies: not a valid Set-Cookie value")
		}
		h.Add("Set-Cookie", c)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return nil
}

// sharedCredentialsPath is the AWS shared credentials file, as the AWS
// SDKs and Envoy find it.
func sharedCredentialsPath() string {
	if p := os.Getenv("AWS_SHARED_CREDENTIALS_FILE"); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".aws", "credentials")
}

// defaultCredentials is the default chain flexgw implements: the
// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN),
// then the credentials file's AWS_PROFILE (or default) profile.
func defaultCredentials(f *credentialsFile) (aws.Credentials, error) {
	if id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret, SessionToken: os.Getenv("AWS_SESSION_TOKEN"), Source: "environment"}, nil
	}
	profile := os.Getenv("AWS_PROFILE")
	if profile == "" {
		profile = "default"
	}
	c, err := f.get(sharedCredentialsPath(), profile)
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment, and %w", err)
	}
	return c, nil
}

// credentialsFile caches one shared credentials file, read again when it
// changes (checked at most every credentialsRecheck), so rotated keys are
// picked up without a reload.
type credentialsFile struct {
	mu      sync.Mutex
	path    string
	mod     time.Time
	size    int64
	checked time.Time
	// profiles maps a profile to its credentials.
	profiles map[string]aws.Credentials
}

const credentialsRecheck = 5 * time.Second

func (f *credentialsFile) get(path, profile string) (aws.Credentials, error) {
	if path == "" {
		return aws.Credentials{}, errors.New("no credentials file: set AWS_SHARED_CREDENTIALS_FILE or HOME")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if f.profiles == nil || f.path != path || now.Sub(f.checked) >= credentialsRecheck {
		st, err := os.Stat(path)
		if err != nil {
			return aws.Credentials{}, fmt.Errorf("credentials file: %w", err)
		}
		if f.profiles == nil || f.path != path || !st.ModTime().Equal(f.mod) || st.Size() != f.size {
			b, err := os.ReadFile(path)
			if err != nil {
				return aws.Credentials{}, fmt.Errorf("credentials file: %w", err)
			}
			f.profiles = parseCredentialsINI(b)
			f.path, f.mod, f.size = path, st.ModTime(), st.Size()
		}
		f.checked = now
	}
	c, ok := f.profiles[profile]
	if !ok || c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return aws.Credentials{}, fmt.Errorf("credentials file %s: profile %q has no aws_access_key_id and aws_secret_access_key", path, profile)
	}
	return c, nil
}

// parseCredentialsINI reads the shared credentials file format: [profile]
// sections of key = value lines, # and ; comments.
func parseCredentialsINI(b []byte) map[string]aws.Credentials {
	out := map[string]aws.Credentials{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' && line[len(line)-1] == ']' {
			section = strings.TrimSpace(strings.TrimPrefix(line[1:len(line)-1], "profile "))
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			continue
		}
		c := out[section]
		c.Source = "credentials file"
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "aws_access_key_id":
			c.AccessKeyID = strings.TrimSpace(v)
		case "aws_secret_access_key":
			c.SecretAccessKey = strings.TrimSpace(v)
		case "aws_session_token":
			c.SessionToken = strings.TrimSpace(v)
		}
		out[section] = c
	}
	return out
}

// LambdaSpec is native-aws-lambda's checked configuration, for the Envoy
// rendering (envoy/policyfilter), which maps it onto the aws_lambda filter.
type LambdaSpec struct {
	ARN                string
	PayloadPassthrough bool
	Async              bool
	// AuthenticationMode is "default", "profile" or "credentials".
	AuthenticationMode string
	CredentialProfile  string
	// Credentials are set in mode "credentials".
	AccessKeyID, SecretAccessKey, SessionToken string
}

// LambdaSpecOf validates p's configuration and returns its spec.
func LambdaSpecOf(p *ir.Policy) (LambdaSpec, error) {
	c, err := parseLambda(p.Config)
	if err != nil {
		return LambdaSpec{}, err
	}
	s := LambdaSpec{ARN: c.arn, PayloadPassthrough: c.passthrough, Async: c.async, AuthenticationMode: c.mode, CredentialProfile: c.profile}
	if c.static != nil {
		s.AccessKeyID, s.SecretAccessKey, s.SessionToken = c.static.AccessKeyID, c.static.SecretAccessKey, c.static.SessionToken
	}
	return s, nil
}
