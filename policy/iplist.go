package policy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbaccfgv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flexgw/flexgw/ir"
)

// ipListConfig is the config of ip-allowlist-flex and ip-blocklist-flex.
type ipListConfig struct {
	IPs []string `json:"ips"`
	// IPExpression chooses the client address (Flex default: X-Forwarded-For).
	IPExpression string `json:"ipExpression"`
	// TrustedProxies (flexgw) lists the peers whose X-Forwarded-For (or
	// other ipExpression header) is believed; from any other peer the TCP
	// peer address is used.
	TrustedProxies []string `json:"trustedProxies"`
}

type ipList struct {
	name  string
	allow bool // allowlist: deny when not listed; blocklist: deny when listed
}

func init() {
	Register(&ipList{name: "ip-allowlist-flex", allow: true})
	Register(&ipList{name: "ip-blocklist-flex", allow: false})
}

type ipListPolicy struct {
	ranges []netip.Prefix
	addr   *clientAddr
	cfg    ipListConfig
}

func (d *ipList) Name() string { return d.name }

func (d *ipList) parse(raw json.RawMessage) (*ipListPolicy, error) {
	var c ipListConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	if len(c.IPs) == 0 {
		return nil, fieldErr("ips", "required: list at least one address or CIDR")
	}
	p := &ipListPolicy{cfg: c}
	for i, s := range c.IPs {
		r, err := parseIPRange(s)
		if err != nil {
			return nil, fieldErr(fmt.Sprintf("ips[%d]", i), "%v", err)
		}
		p.ranges = append(p.ranges, r)
	}
	a, err := newClientAddr("ipExpression", c.IPExpression, "trustedProxies", c.TrustedProxies)
	if err != nil {
		return nil, err
	}
	p.addr = a
	return p, nil
}

// Warnings implements Warner: Flex's default ipExpression reads a header
// any client can write.
func (d *ipList) Warnings(p *ir.Policy) []string {
	pol, err := d.parse(p.Config)
	if err != nil || !pol.addr.spoofable() {
		return nil
	}
	expr := pol.cfg.IPExpression
	if expr == "" {
		expr = defaultIPExpression + " (the default)"
	}
	return []string{fmt.Sprintf("%s reads the client address from ipExpression %s, as Flex does; any client can set that header and choose the address the %s checks. Behind a load balancer or proxy, add trustedProxies: [<its address or CIDR>] so only what it appends is believed; facing clients directly, set ipExpression: \"#[attributes.remoteAddress]\"", d.name, expr, map[bool]string{true: "allowlist", false: "blocklist"}[d.allow])}
}

// Validate implements Definition.
func (d *ipList) Validate(raw json.RawMessage) error {
	_, err := d.parse(raw)
	return err
}

// Build implements Definition.
func (d *ipList) Build(env Env, p *ir.Policy) (Middleware, error) {
	pol, err := d.parse(p.Config)
	if err != nil {
		return nil, err
	}
	api := apiName(env)
	name := d.name
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a := pol.addr.addr(r, api)
			listed := a.IsValid() && pol.contains(a)
			if listed != d.allow {
				deny(w, r, name, Denied, http.StatusForbidden, "IP "+a.String()+" is rejected")
				return
			}
			Decide(r, name, Allowed)
			next.ServeHTTP(w, r)
		})
	}, nil
}

func (p *ipListPolicy) contains(a netip.Addr) bool {
	for _, r := range p.ranges {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

func apiName(env Env) string {
	if env.API != nil {
		return env.API.Key()
	}
	return ""
}

// RenderEnvoy implements EnvoyRenderer with the rbac filter on the TCP
// peer address. With trustedProxies the client address comes from
// X-Forwarded-For walked against CIDRs, which rbac cannot express (its
// remote_ip trusts a hop count), so Envoy asks the agent (ext_authz).
func (d *ipList) RenderEnvoy(env Env, p *ir.Policy) ([]EnvoyFilter, error) {
	pol, err := d.parse(p.Config)
	if err != nil {
		return nil, err
	}
	if !pol.addr.peer {
		// The address comes from a header (Flex's X-Forwarded-For
		// default, or trustedProxies' walk): rbac's remote_ip cannot
		// express either, so Envoy asks the agent, which runs this
		// policy's own code.
		return extAuthzFilter(env, p)
	}
	var ids []*rbaccfgv3.Principal
	for _, r := range pol.ranges {
		ids = append(ids, &rbaccfgv3.Principal{Identifier: &rbaccfgv3.Principal_DirectRemoteIp{DirectRemoteIp: &corev3.CidrRange{
			AddressPrefix: r.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(r.Bits())),
		}}})
	}
	action := rbaccfgv3.RBAC_DENY
	if d.allow {
		action = rbaccfgv3.RBAC_ALLOW
	}
	return []EnvoyFilter{{
		Name: FilterName(p),
		Config: &rbacv3.RBAC{Rules: &rbaccfgv3.RBAC{
			Action: action,
			Policies: map[string]*rbaccfgv3.Policy{d.name: {
				Permissions: []*rbaccfgv3.Permission{{Rule: &rbaccfgv3.Permission_Any{Any: true}}},
				Principals:  []*rbaccfgv3.Principal{{Identifier: &rbaccfgv3.Principal_OrIds{OrIds: &rbaccfgv3.Principal_Set{Ids: ids}}}},
			}},
		}, RulesStatPrefix: statSafe(d.name) + "."},
	}}, nil
}

// SecretFields implements Secrets: addresses only, none secret.
func (*ipList) SecretFields() []string { return []string{} }
