package policyfilter

import (
	awslambdav3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/aws_lambda/v3"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

func init() { Register("native-aws-lambda", awsLambda) }

// awsLambda renders native-aws-lambda with Envoy's aws_lambda filter, which
// Flex's policy extends: Envoy signs the request (SigV4) and sends it to
// the route's cluster, the Lambda endpoint the policy is bound to. Mode
// "default" leaves credentials to Envoy's default provider chain.
func awsLambda(_ Env, p *ir.Policy) ([]Filter, error) {
	s, err := policy.LambdaSpecOf(p)
	if err != nil {
		return nil, err
	}
	cfg := &awslambdav3.Config{Arn: s.ARN, PayloadPassthrough: s.PayloadPassthrough, InvocationMode: awslambdav3.Config_SYNCHRONOUS}
	if s.Async {
		cfg.InvocationMode = awslambdav3.Config_ASYNCHRONOUS
	}
	switch s.AuthenticationMode {
	case "profile":
		cfg.CredentialsProfile = s.CredentialProfile
	case "credentials":
		cfg.Credentials = &awslambdav3.Credentials{AccessKeyId: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey, SessionToken: s.SessionToken}
	}
	return []Filter{{Name: FilterName(p), Config: cfg}}, nil
}
