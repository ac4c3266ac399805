package translate

import (
	"fmt"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/flexgw/flexgw/ir"
)

// GRPCRouteConfigName is the route configuration of an ApiInstance's API
// listener.
func GRPCRouteConfigName(a *ir.API) string { return "grpc/" + a.Key() }

// grpc renders the proxyless gRPC resources: per ApiInstance a Listener
// named after it (the authority clients dial as xds:///<name>) holding an
// api_listener HttpConnectionManager that fetches its routes over RDS. The
// routes are the API's own, matched and weighted exactly as Envoy's; what
// gRPC clients reject (policy filters, rewrites) is left out. When two
// namespaces use the same ApiInstance name the first listener keeps it.
func (t *translator) grpc(services map[string]*ir.Service) error {
	needed := map[string]bool{}
	seen := map[string]bool{}
	for _, a := range t.snap.APIs() {
		name := GRPCListenerName(a)
		if seen[name] {
			t.warn("api %q: a proxyless gRPC listener named %q already exists; xds:///%s reaches the first one", a.Key(), name, name)
			continue
		}
		seen[name] = true
		var routes []*routev3.Route
		for _, r := range a.Routes {
			rs, err := t.makeRoutes(a, r, services, true)
			if err != nil {
				return fmt.Errorf("api %q route %q (%s): %w", a.Key(), r.Name, r.Source, err)
			}
			routes = append(routes, rs...)
			for _, d := range r.Destinations {
				if d.DirectResponse != nil {
					continue
				}
				needed[d.Service] = true
			}
		}
		rcName := GRPCRouteConfigName(a)
		t.res.GRPC.Routes = append(t.res.GRPC.Routes, &routev3.RouteConfiguration{
			Name: rcName,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    VirtualHostName,
				Domains: []string{"*"},
				Routes:  routes,
			}},
		})
		router, err := t.routerFilter()
		if err != nil {
			return err
		}
		mgr, err := toAny(&hcmv3.HttpConnectionManager{
			StatPrefix: statName(name),
			RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
				ConfigSource:    t.in.ads,
				RouteConfigName: rcName,
			}},
			HttpFilters: []*hcmv3.HttpFilter{router},
		})
		if err != nil {
			return fmt.Errorf("api %q: grpc api listener: %w", a.Key(), err)
		}
		t.res.GRPC.Listeners = append(t.res.GRPC.Listeners, &listenerv3.Listener{
			Name:        name,
			ApiListener: &listenerv3.ApiListener{ApiListener: mgr},
		})
	}
	for _, svc := range t.snap.Services {
		if !needed[svc.Key()] {
			continue
		}
		c, cla, err := t.makeCluster(svc, true)
		if err != nil {
			return fmt.Errorf("grpc cluster %q (%s %s): %w", svc.Key(), svc.Source.Kind, svc.Source, err)
		}
		t.res.GRPC.Clusters = append(t.res.GRPC.Clusters, c)
		if cla != nil {
			t.res.GRPC.Endpoints = append(t.res.GRPC.Endpoints, cla)
		}
	}
	return nil
}

func apiListenerHCM(l *listenerv3.Listener) (*hcmv3.HttpConnectionManager, error) {
	a := l.GetApiListener().GetApiListener()
	if a == nil {
		return nil, nil
	}
	mgr := &hcmv3.HttpConnectionManager{}
	if err := a.UnmarshalTo(mgr); err != nil {
		return nil, fmt.Errorf("listener %q: api_listener: %w", l.GetName(), err)
	}
	return mgr, nil
}
