package policy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"

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

// SecretFields implements Secrets: addresses only, none secret.
func (*ipList) SecretFields() []string { return []string{} }

// IPListSpec is an ip-allowlist-flex or ip-blocklist-flex binding's
// validated configuration as plain data.
type IPListSpec struct {
	// Allow denies addresses not listed; otherwise listed ones are denied.
	Allow bool
	// PeerAddress is set when the client address is the TCP peer's; else
	// it comes from a header (ipExpression, trustedProxies).
	PeerAddress bool
	Ranges      []netip.Prefix
}

// IPListSpecOf validates p's configuration and returns it as an IPListSpec.
func IPListSpecOf(p *ir.Policy) (*IPListSpec, error) {
	d, ok := Lookup(p.Name)
	il, isIPList := d.(*ipList)
	if !ok || !isIPList {
		return nil, fmt.Errorf("policy %q is not an IP list", p.Name)
	}
	pol, err := il.parse(p.Config)
	if err != nil {
		return nil, err
	}
	return &IPListSpec{Allow: il.allow, PeerAddress: pol.addr.peer, Ranges: pol.ranges}, nil
}
