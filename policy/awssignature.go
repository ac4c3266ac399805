package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"golang.org/x/net/http/httpguts"

	"github.com/flexgw/flexgw/internal/sigv4a"
	"github.com/flexgw/flexgw/ir"
)

// awsSignatureConfig is native-aws-signature-flex's configuration, as
// Flex's AWS Request Signature page lists it (an extension of Envoy's
// aws_request_signing filter; the credential objects carry the Envoy
// credential providers' fields in camelCase).
type awsSignatureConfig struct {
	ServiceName             string   `json:"serviceName"`
	Region                  string   `json:"region"`
	UseUnsignedPayload      FlexBool `json:"useUnsignedPayload"`
	SigningAlgorithm        string   `json:"signingAlgorithm"`
	MatchExcludedHeaders    []string `json:"matchExcludedHeaders"`
	AuthenticationMode      string   `json:"authenticationMode"`
	CredentialsFileProvider *struct {
		// CredentialsFile is the shared credentials file's path (Envoy's
		// credentials_data_source filename; default: the SDKs' file).
		CredentialsFile       string `json:"credentialsFile"`
		CredentialsDataSource *struct {
			Filename string `json:"filename"`
		} `json:"credentialsDataSource"`
		Profile string `json:"profile"`
	} `json:"credentialsFileProvider"`
	InlineCredentialProvider *awsKeys `json:"inlineCredentialProvider"`
}

// Authentication modes of native-aws-signature-flex: Envoy's credential
// providers (its default chain, a credentials file, inline keys).
const (
	awsSigAuthDefault = "default"
	awsSigAuthFile    = "file"
	awsSigAuthInline  = "inline"
)

// maxSignedBody is the largest body signed (its SHA-256 is part of the
// signature, so it is read whole first): Envoy's default buffer limit,
// beyond which its filter answers 413 too.
const maxSignedBody = 1 << 20

// unsignedPayload is the payload hash of useUnsignedPayload.
const unsignedPayload = "UNSIGNED-PAYLOAD"

type awsSignature struct{}

func init() { Register(awsSignature{}) }

func (awsSignature) Name() string { return "native-aws-signature-flex" }

type compiledAWSSignature struct {
	service, region string
	// sigv4a signs with AWS_SIGV4A; region is then a region set.
	sigv4a        bool
	regionSet     []string
	unsigned      bool
	excluded      map[string]bool // canonical names
	mode          string
	file, profile string
	static        *aws.Credentials
}

func parseAWSSignature(raw json.RawMessage) (*compiledAWSSignature, error) {
	var c awsSignatureConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	out := &compiledAWSSignature{service: c.ServiceName, region: c.Region, unsigned: c.UseUnsignedPayload.Or(false), excluded: map[string]bool{}}
	if out.service == "" || strings.ContainsAny(out.service, "/ ") {
		return nil, fieldErr("serviceName", "required: the service namespace of the endpoint (s3, execute-api, lambda, ...), got %q", c.ServiceName)
	}
	if out.region == "" || strings.ContainsAny(out.region, "/") {
		return nil, fieldErr("region", "required: the AWS region of the service (us-east-1, ...), got %q", c.Region)
	}
	switch strings.ToUpper(strings.ReplaceAll(c.SigningAlgorithm, "-", "_")) {
	case "", "AWS_SIGV4", "SIGV4":
		if strings.ContainsAny(out.region, " ,") {
			return nil, fieldErr("region", "with AWS_SIGV4, one region (a region set needs signingAlgorithm: AWS_SIGV4A), got %q", c.Region)
		}
	case "AWS_SIGV4A", "SIGV4A":
		// As Envoy's filter: region is then the region set, a comma-separated
		// list of regions or wildcards ("*", "us-*").
		out.sigv4a = true
		for _, r := range strings.Split(out.region, ",") {
			r = strings.TrimSpace(r)
			if r == "" || strings.ContainsAny(r, " /;=\"") {
				return nil, fieldErr("region", "with AWS_SIGV4A, a comma-separated region set (us-east-1,eu-west-1 or *), got %q", c.Region)
			}
			out.regionSet = append(out.regionSet, r)
		}
		out.region = strings.Join(out.regionSet, ",")
	default:
		return nil, fieldErr("signingAlgorithm", "must be AWS_SIGV4 or AWS_SIGV4A, got %q", c.SigningAlgorithm)
	}
	for i, h := range c.MatchExcludedHeaders {
		if !httpguts.ValidHeaderFieldName(h) {
			return nil, fieldErr(fmt.Sprintf("matchExcludedHeaders[%d]", i), "%q is not a header name", h)
		}
		out.excluded[http.CanonicalHeaderKey(h)] = true
	}
	mode := strings.ToLower(c.AuthenticationMode)
	switch mode {
	case "":
		// Flex names it required; the provider given decides, else the
		// default chain (Envoy's behaviour without credential_provider).
		switch {
		case c.InlineCredentialProvider != nil:
			mode = awsSigAuthInline
		case c.CredentialsFileProvider != nil:
			mode = awsSigAuthFile
		default:
			mode = awsSigAuthDefault
		}
	case "default", "defaultchain", "default_chain":
		mode = awsSigAuthDefault
	case "file", "credentialsfile", "credentialsfileprovider", "credentials_file":
		mode = awsSigAuthFile
	case "inline", "inlinecredential", "inlinecredentialprovider", "inline_credential":
		mode = awsSigAuthInline
	default:
		return nil, fieldErr("authenticationMode", "must be default (environment, then the credentials file), file (credentialsFileProvider) or inline (inlineCredentialProvider), got %q", c.AuthenticationMode)
	}
	out.mode = mode
	switch mode {
	case awsSigAuthInline:
		ic := c.InlineCredentialProvider
		if ic == nil || ic.AccessKeyID == "" {
			return nil, fieldErr("inlineCredentialProvider.accessKeyId", "required when authenticationMode is inline")
		}
		if ic.SecretAccessKey == "" {
			return nil, fieldErr("inlineCredentialProvider.secretAccessKey", "required when authenticationMode is inline")
		}
		out.static = &aws.Credentials{AccessKeyID: ic.AccessKeyID, SecretAccessKey: ic.SecretAccessKey, SessionToken: ic.SessionToken, Source: "native-aws-signature-flex config"}
	case awsSigAuthFile:
		out.profile = "default"
		if fp := c.CredentialsFileProvider; fp != nil {
			out.file = fp.CredentialsFile
			if fp.CredentialsDataSource != nil && out.file == "" {
				out.file = fp.CredentialsDataSource.Filename
			}
			if fp.Profile != "" {
				out.profile = fp.Profile
			}
		}
	}
	return out, nil
}

// Validate implements Definition.
func (awsSignature) Validate(raw json.RawMessage) error {
	_, err := parseAWSSignature(raw)
	return err
}

// SecretFields implements Secrets.
func (awsSignature) SecretFields() []string {
	return []string{"inlineCredentialProvider.secretAccessKey", "inlineCredentialProvider.sessionToken"}
}

// Build implements Definition. The chain only prepares (credentials, the
// payload hash); the signature is computed at dispatch, on the request as
// it leaves: after the route's rewrites, with the endpoint's Host, once
// per attempt.
func (d awsSignature) Build(env Env, p *ir.Policy) (Middleware, error) {
	c, err := parseAWSSignature(p.Config)
	if err != nil {
		return nil, err
	}
	creds := awsCredentials(c.static, c.file, c.profile)
	signer := v4.NewSigner(func(o *v4.SignerOptions) {
		// S3 signs the path as sent; every other service escapes it again.
		o.DisableURIPathEscaping = strings.HasPrefix(c.service, "s3")
	})
	name := d.Name()
	log := logger(env).With("policy", name, "binding", p.Binding)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cr, err := creds()
			if err != nil {
				// As Envoy's filter: without credentials the request goes
				// on unsigned and the service answers it.
				log.LogAttrs(r.Context(), slog.LevelWarn, "no AWS credentials; forwarding unsigned", slog.String("error", err.Error()))
				Decide(r, name, Error)
				next.ServeHTTP(w, r)
				return
			}
			hash := unsignedPayload
			if !c.unsigned {
				body, err := readCapped(r.Body, maxSignedBody)
				if err != nil {
					if errors.Is(err, errBodyTooLarge) {
						deny(w, r, name, Denied, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over the %d bytes a signed payload can hold (useUnsignedPayload: true signs without it)", maxSignedBody))
						return
					}
					deny(w, r, name, Error, http.StatusBadRequest, "reading the request body: "+err.Error())
					return
				}
				if r.Body != nil && r.Body != http.NoBody {
					// The body read whole is sent with its length.
					_ = r.Body.Close()
					r.Body = io.NopCloser(bytes.NewReader(body))
					r.ContentLength = int64(len(body))
					r.TransferEncoding = nil
				}
				sum := sha256.Sum256(body)
				hash = hex.EncodeToString(sum[:])
			}
			ctx := context.WithoutCancel(r.Context())
			OnDispatch(r, func(up *UpstreamRequest) http.Header {
				return c.sign(ctx, signer, cr, hash, up, log)
			})
			Decide(r, name, Allowed)
			next.ServeHTTP(w, r)
		})
	}, nil
}

// sign computes the SigV4 headers of up: every header it carries (but
// the excluded ones and those the SDK never signs) is signed, with the
// host, the content length and the payload hash.
func (c *compiledAWSSignature) sign(ctx context.Context, signer *v4.Signer, cr aws.Credentials, hash string, up *UpstreamRequest, log *slog.Logger) http.Header {
	if c.sigv4a {
		return c.signV4A(ctx, cr, hash, up, log)
	}
	req := &http.Request{
		Method: up.Method, Host: up.Host, Header: make(http.Header, len(up.Header)+4), ContentLength: up.ContentLength,
		// Opaque keeps the path exactly as sent (the signer reads it from
		// here rather than re-escaping URL.Path).
		URL: &url.URL{Scheme: up.Scheme, Host: up.Host, Opaque: "//" + up.Host + up.Path, RawQuery: up.RawQuery},
	}
	if req.ContentLength < 0 {
		req.ContentLength = 0
	}
	for k, vs := range up.Header {
		if !c.excluded[k] {
			req.Header[k] = vs
		}
	}
	req.Header.Del("Authorization")
	req.Header.Del("X-Amz-Date")
	req.Header.Del("X-Amz-Security-Token")
	req.Header.Set("X-Amz-Content-Sha256", hash)
	if err := signer.SignHTTP(ctx, cr, req, hash, c.service, c.region, time.Now().UTC()); err != nil {
		log.LogAttrs(ctx, slog.LevelWarn, "signing the upstream request", slog.String("error", err.Error()))
		return nil
	}
	out := http.Header{
		"Authorization":        req.Header["Authorization"],
		"X-Amz-Date":           req.Header["X-Amz-Date"],
		"X-Amz-Content-Sha256": {hash},
	}
	if cr.SessionToken != "" {
		out["X-Amz-Security-Token"] = []string{cr.SessionToken}
	}
	return out
}

// signV4A computes the SigV4A headers of up: the same headers signed as
// SigV4, the region set in X-Amz-Region-Set, an ECDSA P-256 signature.
func (c *compiledAWSSignature) signV4A(ctx context.Context, cr aws.Credentials, hash string, up *UpstreamRequest, log *slog.Logger) http.Header {
	hdr := make(map[string][]string, len(up.Header)+1)
	for k, vs := range up.Header {
		switch k {
		case "Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Region-Set", "X-Amz-Content-Sha256":
		default:
			if !c.excluded[k] {
				hdr[k] = vs
			}
		}
	}
	hdr["X-Amz-Content-Sha256"] = []string{hash}
	length := up.ContentLength
	if length < 0 {
		length = 0
	}
	out, err := sigv4a.Sign(sigv4a.Request{Method: up.Method, Host: up.Host, Path: up.Path, RawQuery: up.RawQuery, Header: hdr, ContentLength: length},
		sigv4a.Params{AccessKeyID: cr.AccessKeyID, SecretAccessKey: cr.SecretAccessKey, SessionToken: cr.SessionToken, Service: c.service,
			RegionSet: c.regionSet, PayloadHash: hash, EscapePath: !strings.HasPrefix(c.service, "s3"), Time: time.Now()})
	if err != nil {
		log.LogAttrs(ctx, slog.LevelWarn, "signing the upstream request (SigV4A)", slog.String("error", err.Error()))
		return nil
	}
	res := http.Header{"X-Amz-Content-Sha256": {hash}}
	for k, v := range out {
		res[k] = []string{v}
	}
	return res
}

// AWSSignatureSpec is native-aws-signature-flex's checked configuration,
// for the Envoy rendering (the aws_request_signing filter).
type AWSSignatureSpec struct {
	ServiceName, Region string
	UseUnsignedPayload  bool
	// SigV4A signs with AWS_SIGV4A (Region is then a region set).
	SigV4A               bool
	MatchExcludedHeaders []string
	// AuthenticationMode is "default", "file" or "inline".
	AuthenticationMode     string
	CredentialsFile        string
	Profile                string
	AccessKeyID, SecretKey string
	SessionToken           string
}

// AWSSignatureSpecOf validates p's configuration and returns its spec.
func AWSSignatureSpecOf(p *ir.Policy) (AWSSignatureSpec, error) {
	c, err := parseAWSSignature(p.Config)
	if err != nil {
		return AWSSignatureSpec{}, err
	}
	s := AWSSignatureSpec{ServiceName: c.service, Region: c.region, UseUnsignedPayload: c.unsigned, SigV4A: c.sigv4a, AuthenticationMode: c.mode, CredentialsFile: c.file, Profile: c.profile}
	for h := range c.excluded {
		s.MatchExcludedHeaders = append(s.MatchExcludedHeaders, strings.ToLower(h))
	}
	if c.static != nil {
		s.AccessKeyID, s.SecretKey, s.SessionToken = c.static.AccessKeyID, c.static.SecretAccessKey, c.static.SessionToken
	}
	return s, nil
}
