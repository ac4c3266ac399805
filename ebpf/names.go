package ebpf

import (
	"cmp"
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/flexgw/flexgw/ir"
)

// Configured is one endpoint as the configuration names it: the service
// (IR key "namespace/name") that lists it and its text ("localhost:9000").
type Configured struct {
	Service  string `json:"service"`
	Endpoint string `json:"endpoint"`
}

func (c Configured) compare(o Configured) int {
	return cmp.Or(cmp.Compare(c.Service, o.Service), cmp.Compare(c.Endpoint, o.Endpoint))
}

// ConfiguredEndpoint is a configured endpoint with the kernel addresses it
// resolved to when the snapshot was accepted.
type ConfiguredEndpoint struct {
	Configured
	// Addresses are the IP:port pairs the kernel sees for this endpoint:
	// the literal, or every address the host name resolved to.
	Addresses []netip.AddrPort
	// ResolveError says why a host name gave no address (its connections
	// then show as service "unknown" until the next reload resolves it).
	ResolveError string
}

// Names maps kernel addresses to the configuration in an IR snapshot:
// remote addresses to the configured endpoints that resolve to them, local
// ports to listener names. The kernel knows only addresses, so when several
// configured endpoints (of one service or of several) resolve to the same
// address, the address's numbers belong to all of them and are shown as
// shared instead of being given to one. Build one per accepted snapshot
// (off the hot path: host names are looked up here, so a reload also
// re-resolves them) and swap it atomically.
type Names struct {
	owners     map[netip.AddrPort][]Configured
	configured []ConfiguredEndpoint
	listeners  map[uint16]string
}

// LookupFunc resolves a host name to its addresses.
type LookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// lookupTimeout bounds the resolution of one snapshot's host names: a
// reload must not hang on a dead DNS server.
const lookupTimeout = 5 * time.Second

// NamesFromSnapshot builds Names from s. Endpoint hosts that are not IP
// literals are resolved with lookup (net.DefaultResolver.LookupNetIP when
// nil), concurrently and within five seconds in all; a host that does not
// resolve keeps its ResolveError and no address.
func NamesFromSnapshot(ctx context.Context, s *ir.Snapshot, lookup LookupFunc) *Names {
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	n := &Names{owners: map[netip.AddrPort][]Configured{}, listeners: map[uint16]string{}}
	if s == nil {
		return n
	}
	for _, l := range s.Listeners {
		port := uint16(l.Port)
		if _, dup := n.listeners[port]; !dup && l.Port > 0 && l.Port < 1<<16 {
			n.listeners[port] = l.Name
		}
	}
	type hostResult struct {
		addrs []netip.Addr
		err   error
	}
	hosts := map[string]*hostResult{}
	seen := map[Configured]bool{}
	type pending struct {
		ce   ConfiguredEndpoint
		host string
		port uint16
	}
	var eps []pending
	for _, svc := range s.Services {
		for _, ep := range svc.Endpoints {
			if ep.Port <= 0 || ep.Port >= 1<<16 {
				continue
			}
			c := Configured{Service: svc.Key(), Endpoint: ep.Address()}
			if seen[c] {
				continue
			}
			seen[c] = true
			eps = append(eps, pending{ce: ConfiguredEndpoint{Configured: c}, host: ep.Host, port: uint16(ep.Port)})
			if _, err := netip.ParseAddr(ep.Host); err != nil && hosts[ep.Host] == nil {
				hosts[ep.Host] = &hostResult{}
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for host, r := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.addrs, r.err = lookup(ctx, host)
		}()
	}
	wg.Wait()
	for _, p := range eps {
		var addrs []netip.Addr
		if a, err := netip.ParseAddr(p.host); err == nil {
			addrs = []netip.Addr{a}
		} else if r := hosts[p.host]; r.err != nil {
			p.ce.ResolveError = r.err.Error()
		} else if len(r.addrs) == 0 {
			p.ce.ResolveError = "no addresses"
		} else {
			addrs = r.addrs
		}
		for _, a := range addrs {
			ap := netip.AddrPortFrom(a.Unmap(), p.port)
			if slices.Contains(p.ce.Addresses, ap) {
				continue
			}
			p.ce.Addresses = append(p.ce.Addresses, ap)
			n.owners[ap] = append(n.owners[ap], p.ce.Configured)
		}
		n.configured = append(n.configured, p.ce)
	}
	for _, o := range n.owners {
		slices.SortFunc(o, Configured.compare)
	}
	slices.SortFunc(n.configured, func(a, b ConfiguredEndpoint) int { return a.compare(b.Configured) })
	return n
}

// Owners returns the configured endpoints that resolve to ap, sorted; more
// than one means the address is shared. The slice must not be modified.
func (n *Names) Owners(ap netip.AddrPort) []Configured {
	if n == nil {
		return nil
	}
	return n.owners[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())]
}

// Endpoints returns every configured endpoint with its addresses, sorted by
// service and endpoint. The slice must not be modified.
func (n *Names) Endpoints() []ConfiguredEndpoint {
	if n == nil {
		return nil
	}
	return n.configured
}

// Listener names the listener bound to a local port.
func (n *Names) Listener(port uint16) (string, bool) {
	if n == nil {
		return "", false
	}
	l, ok := n.listeners[port]
	return l, ok
}
