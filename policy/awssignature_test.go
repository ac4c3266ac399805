package policy_test

import (
	"strings"
	"testing"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/policy"
)

// Region and algorithm errors name the field: a region set only with
// SigV4A, and no region set entry that could smuggle another header
// parameter into X-Amz-Region-Set.
func TestAWSSignatureConfigErrors(t *testing.T) {
	base := func(kv ...any) map[string]any {
		m := map[string]any{"serviceName": "execute-api", "authenticationMode": "default"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	bad := []struct {
		cfg   map[string]any
		field string
	}{
		{base("region", "us-east-1,eu-west-1"), "config.region"},
		{base("region", "us-east-1", "signingAlgorithm", "AWS_SIGV5"), "config.signingAlgorithm"},
		{base("region", "us-east-1,,eu-west-1", "signingAlgorithm", "AWS_SIGV4A"), "config.region"},
		{base("region", `us-east-1;x="y"`, "signingAlgorithm", "AWS_SIGV4A"), "config.region"},
		{base("region", "us east", "signingAlgorithm", "AWS_SIGV4A"), "config.region"},
		{base("region", "", "signingAlgorithm", "AWS_SIGV4A"), "config.region"},
	}
	for _, c := range bad {
		err := policy.Check(policytest.Policy("native-aws-signature-flex", c.cfg))
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%v: error %v, want one naming %s", c.cfg, err, c.field)
		}
	}
	for _, region := range []string{"*", "us-east-1, eu-*", "ap-south-1"} {
		if err := policy.Check(policytest.Policy("native-aws-signature-flex", base("region", region, "signingAlgorithm", "AWS_SIGV4A"))); err != nil {
			t.Errorf("SigV4A region set %q refused: %v", region, err)
		}
	}
}
