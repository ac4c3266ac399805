package policyfilter

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	awsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/aws/v3"
	awssigningv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/aws_request_signing/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

func init() { Register("native-aws-signature-flex", awsSignature) }

// awsSignature renders native-aws-signature-flex with Envoy's
// aws_request_signing filter, of which Flex's policy is an extension:
// SigV4 or SigV4A, the service's name and region, unsigned payloads, excluded
// headers, and the credential provider (inline keys, a credentials file
// profile, or Envoy's default chain). Bound to a Service it runs as an
// upstream filter of the service's cluster (Filter.Upstream), so it signs
// the request as the upstream gets it (after the route's rewrites), as
// the built-in data plane signs at dispatch; bound to an API it can only
// be a listener filter, which signs the path before the route rewrites it.
func awsSignature(_ Env, p *ir.Policy) ([]Filter, error) {
	s, err := policy.AWSSignatureSpecOf(p)
	if err != nil {
		return nil, err
	}
	cfg := &awssigningv3.AwsRequestSigning{
		ServiceName:        s.ServiceName,
		Region:             s.Region,
		UseUnsignedPayload: s.UseUnsignedPayload,
		SigningAlgorithm:   awssigningv3.AwsRequestSigning_AWS_SIGV4,
	}
	if s.SigV4A {
		// Envoy reads region as the region set then.
		cfg.SigningAlgorithm = awssigningv3.AwsRequestSigning_AWS_SIGV4A
	}
	for _, h := range s.MatchExcludedHeaders {
		cfg.MatchExcludedHeaders = append(cfg.MatchExcludedHeaders, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: h}, IgnoreCase: true})
	}
	switch s.AuthenticationMode {
	case "inline":
		cfg.CredentialProvider = &awsv3.AwsCredentialProvider{InlineCredential: &awsv3.InlineCredentialProvider{
			AccessKeyId: s.AccessKeyID, SecretAccessKey: s.SecretKey, SessionToken: s.SessionToken,
		}}
	case "file":
		fp := &awsv3.CredentialsFileCredentialProvider{Profile: s.Profile}
		if s.CredentialsFile != "" {
			fp.CredentialsDataSource = &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: s.CredentialsFile}}
		}
		cfg.CredentialProvider = &awsv3.AwsCredentialProvider{CredentialsFileProvider: fp, CustomCredentialProviderChain: true}
	}
	return []Filter{{Name: FilterName(p), Config: cfg, Upstream: true}}, nil
}
