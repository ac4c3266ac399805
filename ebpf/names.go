package ebpf

import (
	"context"
	"net"
	"net/netip"

	"github.com/flexgw/flexgw/ir"
)

// Names maps kernel addresses to the names in an IR snapshot: remote
// endpoints to "namespace/name" services and their configured address, local
// ports to listener names. Build one per accepted snapshot (off the hot
// path: hostnames are looked up here) and swap it atomically; its methods
// fit Options.Resolve and Options.Listeners.
type Names struct {
	endpoints map[netip.AddrPort]endpointName
	listeners map[uint16]string
}

type endpointName struct{ service, endpoint string }

// NamesFromSnapshot builds Names from s. Endpoint hosts that are not IP
// literals are resolved with lookup (net.DefaultResolver.LookupNetIP when
// nil); a host that does not resolve is skipped, so its connections show as
// service "unknown" until the next snapshot.
func NamesFromSnapshot(ctx context.Context, s *ir.Snapshot, lookup func(ctx context.Context, host string) ([]netip.Addr, error)) *Names {
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	n := &Names{endpoints: map[netip.AddrPort]endpointName{}, listeners: map[uint16]string{}}
	if s == nil {
		return n
	}
	for _, l := range s.Listeners {
		port := uint16(l.Port)
		if _, dup := n.listeners[port]; !dup && l.Port > 0 && l.Port < 1<<16 {
			n.listeners[port] = l.Name
		}
	}
	for _, svc := range s.Services {
		for _, ep := range svc.Endpoints {
			if ep.Port <= 0 || ep.Port >= 1<<16 {
				continue
			}
			addrs := []netip.Addr{}
			if a, err := netip.ParseAddr(ep.Host); err == nil {
				addrs = append(addrs, a)
			} else if found, err := lookup(ctx, ep.Host); err == nil {
				addrs = found
			}
			for _, a := range addrs {
				ap := netip.AddrPortFrom(a.Unmap(), uint16(ep.Port))
				if _, dup := n.endpoints[ap]; !dup {
					n.endpoints[ap] = endpointName{svc.Key(), ep.Address()}
				}
			}
		}
	}
	return n
}

// Resolve implements Options.Resolve.
func (n *Names) Resolve(ap netip.AddrPort) (service, endpoint string, ok bool) {
	if n == nil {
		return "", "", false
	}
	e, ok := n.endpoints[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())]
	return e.service, e.endpoint, ok
}

// Listener implements Options.Listeners.
func (n *Names) Listener(port uint16) (string, bool) {
	if n == nil {
		return "", false
	}
	l, ok := n.listeners[port]
	return l, ok
}
