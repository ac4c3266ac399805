package policyfilter

import (
	"strings"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

func init() { Register("cors-flex", cors) }

// cors renders cors-flex with Envoy's cors filter; the policy is the
// per-route CorsPolicy. The translator places the filter first
// (policy.CORSOrder), as the built-in data plane does.
func cors(_ Env, p *ir.Policy) ([]Filter, error) {
	cp, err := policy.CORSSpecOf(p)
	if err != nil {
		return nil, err
	}
	pol := &corsv3.CorsPolicy{AllowCredentials: wrapperspb.Bool(cp.Credentials), MaxAge: "30"}
	if cp.Public {
		pol.AllowOriginStringMatch = []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: ".*"}}}}
		pol.AllowMethods = strings.Join(policy.DefaultCORSMethods, ",")
		pol.AllowHeaders = "*"
	} else {
		// Envoy has one CorsPolicy per route: origins of every group are
		// allowed, with the first group's methods, headers and max age.
		methods, headers, exposed := map[string]bool{}, map[string]bool{}, map[string]bool{}
		var ml, hl, el []string
		for _, g := range cp.Groups {
			if g.Wildcard {
				pol.AllowOriginStringMatch = append(pol.AllowOriginStringMatch, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: ".*"}}})
			}
			for _, o := range g.Origins {
				pol.AllowOriginStringMatch = append(pol.AllowOriginStringMatch, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: o}, IgnoreCase: true})
			}
			for _, m := range g.Methods {
				if !methods[m] {
					methods[m] = true
					ml = append(ml, m)
				}
			}
			for _, h := range g.Headers {
				if !headers[h] {
					headers[h] = true
					hl = append(hl, h)
				}
			}
			for _, h := range strings.Split(g.Exposed, ", ") {
				if h != "" && !exposed[h] {
					exposed[h] = true
					el = append(el, h)
				}
			}
		}
		pol.AllowMethods = strings.Join(ml, ",")
		pol.AllowHeaders = strings.Join(hl, ",")
		pol.ExposeHeaders = strings.Join(el, ",")
		pol.MaxAge = cp.Groups[0].MaxAge
	}
	return []Filter{{Name: FilterName(p), Config: &corsv3.Cors{}, PerRoute: pol}}, nil
}
