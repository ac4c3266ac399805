package policyfilter

import (
	"crypto/sha1" //nolint:gosec // Envoy's basic_auth only verifies {SHA}
	"encoding/base64"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	basicauthv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/basic_auth/v3"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

func init() { Register("http-basic-authentication-flex", basicAuth) }

// basicAuth renders http-basic-authentication-flex with Envoy's
// basic_auth filter. Its users list is htpasswd with {SHA} hashes (the
// only scheme it accepts).
func basicAuth(_ Env, p *ir.Policy) ([]Filter, error) {
	user, pass, err := policy.BasicAuthOf(p)
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum([]byte(pass)) //nolint:gosec // Envoy's basic_auth only verifies {SHA}
	users := user + ":{SHA}" + base64.StdEncoding.EncodeToString(sum[:]) + "\n"
	return []Filter{{
		Name: FilterName(p),
		Config: &basicauthv3.BasicAuth{
			Users: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: users}},
			Realm: "flexgw",
		},
	}}, nil
}
