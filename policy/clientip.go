package policy

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/flexgw/flexgw/policy/internal/dw"
)

// clientAddr chooses the address a policy attributes a request to.
//
// Without trustedProxies it means what Flex documents: ipExpression
// (default X-Forwarded-For) is evaluated on every request and, for
// X-Forwarded-For, the first (leftmost) address is the client, falling
// back to the TCP peer when the header is absent or unparsable. Any client
// can write that header, so Warnings says so and gives the fix.
//
// With trustedProxies (flexgw's extension) a header is believed only when
// the peer is a trusted proxy; X-Forwarded-For is then read right to left,
// skipping trusted proxies, and the first untrusted hop is the client (a
// client can prepend anything, but not what a trusted proxy appended).
type clientAddr struct {
	expr    *dw.Expr
	xff     bool // expr reads x-forwarded-for: use the right-to-left walk
	peer    bool // expr is the peer address itself
	trusted []netip.Prefix
}

const defaultIPExpression = "#[attributes.headers['x-forwarded-for']]"

func newClientAddr(field, ipExpression string, trustedField string, trusted []string) (*clientAddr, error) {
	if ipExpression == "" {
		ipExpression = defaultIPExpression
	}
	c := &clientAddr{}
	norm := strings.ToLower(strings.ReplaceAll(ipExpression, `"`, `'`))
	switch {
	case strings.Contains(norm, "x-forwarded-for"):
		c.xff = true
	case strings.Contains(norm, "remoteaddress"):
		c.peer = true
	default:
		e, err := compileExpr(field, ipExpression)
		if err != nil {
			return nil, err
		}
		c.expr = e
	}
	for i, s := range trusted {
		p, err := parseIPRange(s)
		if err != nil {
			return nil, fieldErr(trustedField+"["+itoa(i)+"]", "%v", err)
		}
		c.trusted = append(c.trusted, p)
	}
	return c, nil
}

func (c *clientAddr) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// addr returns the client address, invalid when none could be parsed.
func (c *clientAddr) addr(r *http.Request, api string) netip.Addr {
	peer := peerAddr(r)
	if c.peer || !peer.IsValid() {
		return peer
	}
	if len(c.trusted) == 0 {
		return c.flexAddr(r, api, peer)
	}
	if !c.isTrusted(peer) {
		return peer
	}
	if c.xff {
		hops := r.Header.Values("X-Forwarded-For")
		var all []string
		for _, h := range hops {
			all = append(all, strings.Split(h, ",")...)
		}
		for i := len(all) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(all[i]))
			if err != nil {
				// A malformed hop: stop believing anything left of it.
				return peer
			}
			a = a.Unmap()
			if !c.isTrusted(a) {
				return a
			}
			peer = a
		}
		return peer
	}
	v := strings.TrimSpace(c.expr.String(&dw.Env{Request: r, API: api}))
	if a, err := netip.ParseAddr(v); err == nil {
		return a.Unmap()
	}
	if ap, err := netip.ParseAddrPort(v); err == nil {
		return ap.Addr().Unmap()
	}
	return peer
}

// flexAddr is Flex's reading of ipExpression: the expression's value, for
// X-Forwarded-For its first address; the peer when there is none.
func (c *clientAddr) flexAddr(r *http.Request, api string, peer netip.Addr) netip.Addr {
	v := ""
	if c.xff {
		v = r.Header.Get("X-Forwarded-For")
		if i := strings.IndexByte(v, ','); i >= 0 {
			v = v[:i]
		}
	} else {
		v = c.expr.String(&dw.Env{Request: r, API: api})
	}
	v = strings.TrimSpace(v)
	if a, err := netip.ParseAddr(v); err == nil {
		return a.Unmap()
	}
	if ap, err := netip.ParseAddrPort(v); err == nil {
		return ap.Addr().Unmap()
	}
	return peer
}

// spoofable reports whether a client can choose the address the policy
// sees: a header is read and no proxy is trusted to have written it.
func (c *clientAddr) spoofable() bool {
	return !c.peer && len(c.trusted) == 0
}

func peerAddr(r *http.Request) netip.Addr { return dw.PeerAddr(r) }

// parseIPRange accepts an address, a CIDR, or Flex's partial IPv4 form
// ("192.168" = 192.168.0.0/16).
func parseIPRange(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	parts := strings.Split(s, ".")
	if len(parts) >= 1 && len(parts) < 4 && !strings.Contains(s, ":") {
		full := parts
		for len(full) < 4 {
			full = append(full, "0")
		}
		if a, err := netip.ParseAddr(strings.Join(full, ".")); err == nil {
			return netip.PrefixFrom(a, 8*len(parts)), nil
		}
	}
	return netip.Prefix{}, &net.ParseError{Type: "IP address or CIDR", Text: s}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}
