package policyfilter

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbaccfgv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

func init() { registerAll(ipList, "ip-allowlist-flex", "ip-blocklist-flex") }

// ipList renders the IP allow and block lists with the rbac filter on the
// TCP peer address. When the client address comes from a header (Flex's
// X-Forwarded-For default, or trustedProxies' walk against CIDRs), rbac's
// remote_ip (which trusts a hop count) cannot express it, so Envoy asks
// the agent (ext_authz), which runs the policy's own code.
func ipList(env Env, p *ir.Policy) ([]Filter, error) {
	pol, err := policy.IPListSpecOf(p)
	if err != nil {
		return nil, err
	}
	if !pol.PeerAddress {
		return ExtAuthz(env, p)
	}
	var ids []*rbaccfgv3.Principal
	for _, r := range pol.Ranges {
		ids = append(ids, &rbaccfgv3.Principal{Identifier: &rbaccfgv3.Principal_DirectRemoteIp{DirectRemoteIp: &corev3.CidrRange{
			AddressPrefix: r.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(r.Bits())),
		}}})
	}
	action := rbaccfgv3.RBAC_DENY
	if pol.Allow {
		action = rbaccfgv3.RBAC_ALLOW
	}
	return []Filter{{
		Name: FilterName(p),
		Config: &rbacv3.RBAC{Rules: &rbaccfgv3.RBAC{
			Action: action,
			Policies: map[string]*rbaccfgv3.Policy{p.Name: {
				Permissions: []*rbaccfgv3.Permission{{Rule: &rbaccfgv3.Permission_Any{Any: true}}},
				Principals:  []*rbaccfgv3.Principal{{Identifier: &rbaccfgv3.Principal_OrIds{OrIds: &rbaccfgv3.Principal_Set{Ids: ids}}}},
			}},
		}, RulesStatPrefix: statSafe(p.Name) + "."},
	}}, nil
}
