package policyfilter

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

func init() { Register("jwt-validation-flex", jwtValidation) }

// jwtValidation renders jwt-validation-flex with Envoy's jwt_authn filter
// when the configuration is one it can express: a bearer or plain header
// token, one JWKS URL or a local key, at most one issuer, no nbf
// requirement and no custom claims. Anything else asks the agent's policy
// engine (ext_authz), which runs exactly the built-in middleware.
func jwtValidation(env Env, p *ir.Policy) ([]Filter, error) {
	c, err := policy.JWTSpecOf(p)
	if err != nil {
		return nil, err
	}
	tokenHeader := ""
	if c.TokenExpression != "" {
		n := strings.ReplaceAll(strings.ReplaceAll(c.TokenExpression, " ", ""), `"`, `'`)
		if strings.HasPrefix(n, "#[attributes.headers['") && strings.HasSuffix(n, "']]") {
			tokenHeader = n[len("#[attributes.headers['") : len(n)-3]
		}
	}
	native := len(c.Issuers) <= 1 && !c.RequireNbf && c.CustomClaims == 0 &&
		(c.TokenExpression == "" || tokenHeader != "") && len(c.JWKSURLs) <= 1 &&
		(!c.ValidateAud || c.RequireAud)
	if !native {
		return ExtAuthz(env, p)
	}
	prov := &jwtv3.JwtProvider{
		Audiences:         c.Audiences,
		RequireExpiration: c.RequireExp,
		Forward:           true,
		ClockSkewSeconds:  uint32(c.ClockSkew / time.Second),
	}
	if len(c.Issuers) == 1 {
		prov.Issuer = c.Issuers[0]
	}
	if tokenHeader != "" {
		prov.FromHeaders = []*jwtv3.JwtHeader{{Name: tokenHeader}}
	}
	for _, h := range c.ClaimsToHeaders {
		prov.ClaimToHeaders = append(prov.ClaimToHeaders, &jwtv3.JwtClaimToHeader{HeaderName: h.Header, ClaimName: h.Claim})
	}
	var clusters []*clusterv3.Cluster
	if len(c.JWKSURLs) == 1 {
		u, err := url.Parse(c.JWKSURLs[0])
		if err != nil {
			return nil, &policy.FieldError{Field: "jwksUrl", Reason: err.Error(), Err: err}
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		pn, _ := strconv.Atoi(port)
		name := "flexgw_jwks_" + statSafe(u.Hostname()) + "_" + port
		cl, err := hostCluster(name, u.Hostname(), uint32(pn), false, u.Scheme == "https")
		if err != nil {
			return nil, err
		}
		clusters = append(clusters, cl)
		prov.JwksSourceSpecifier = &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{
			HttpUri:       &corev3.HttpUri{Uri: c.JWKSURLs[0], HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: name}, Timeout: durationpb.New(c.JWKSTimeout)},
			CacheDuration: durationpb.New(c.JWKSCacheTTL),
			AsyncFetch:    &jwtv3.JwksAsyncFetch{},
		}}
	} else {
		doc, err := c.LocalJWKS()
		if err != nil {
			return nil, err
		}
		prov.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: doc}}}
	}
	provider := statSafe(p.Binding)
	return []Filter{{
		Name: FilterName(p),
		Config: &jwtv3.JwtAuthentication{
			Providers:      map[string]*jwtv3.JwtProvider{provider: prov},
			RequirementMap: map[string]*jwtv3.JwtRequirement{"flexgw": {RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: provider}}},
			// CORS preflights carry no token.
			BypassCorsPreflight: true,
		},
		PerRoute: &jwtv3.PerRouteConfig{RequirementSpecifier: &jwtv3.PerRouteConfig_RequirementName{RequirementName: "flexgw"}},
		Clusters: clusters,
	}}, nil
}
