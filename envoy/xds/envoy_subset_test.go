package xds

import (
	"fmt"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/flexgw/flexgw/ir"
)

// listenersSnapshot has one listener per port, each with one API routing
// to its own service; timeout is every route's timeout, so a version's
// routes are told apart on the wire.
func listenersSnapshot(version uint64, timeout time.Duration, ports ...int) *ir.Snapshot {
	s := &ir.Snapshot{Version: version}
	for _, port := range ports {
		name := fmt.Sprintf("api%d", port)
		s.Services = append(s.Services, &ir.Service{Name: name, Namespace: "default", Protocol: ir.HTTP,
			Endpoints: []ir.Endpoint{{Host: "127.0.0.1", Port: port + 1000}}, LB: ir.RoundRobin})
		api := &ir.API{Name: name, Namespace: "default", BasePath: "/",
			Routes: []*ir.Route{{Name: "r", Timeout: timeout, Destinations: []ir.Destination{{Service: "default/" + name, Weight: 100}}}}}
		s.Listeners = append(s.Listeners, &ir.Listener{Name: fmt.Sprintf("http_0.0.0.0_%d", port), Protocol: ir.HTTP,
			Host: "0.0.0.0", Port: port, APIs: []*ir.API{api}})
	}
	return s
}

// routeTimeout is the timeout of the forwarding route of the named route
// configuration in r.
func routeTimeout(t *testing.T, r *discoveryv3.DiscoveryResponse, name string) time.Duration {
	t.Helper()
	for _, a := range r.Resources {
		rc := &routev3.RouteConfiguration{}
		if err := a.UnmarshalTo(rc); err != nil {
			t.Fatal(err)
		}
		if rc.Name != name {
			continue
		}
		// The API's forwarding route: the first with a timeout (routes
		// before it may answer directly, e.g. path normalisation).
		for _, vh := range rc.VirtualHosts {
			for _, r := range vh.Routes {
				if d := r.GetRoute().GetTimeout().AsDuration(); d > 0 {
					return d
				}
			}
		}
		t.Fatalf("route configuration %s has no route with a timeout", name)
	}
	t.Fatalf("route configuration %s not in the response (%d resources)", name, len(r.Resources))
	return 0
}

// TestEnvoyRouteUpdatesAfterListenerNACK: an Envoy (stand-in) rejects the
// update that adds a second listener, so it never subscribes to that
// listener's routes. Changes to the routes it does subscribe to must still
// reach it; in ADS mode the cache held them back because the request did
// not name every route of the snapshot.
func TestEnvoyRouteUpdatesAfterListenerNACK(t *testing.T) {
	srv, addr := startServer(t)
	if err := srv.Push(listenersSnapshot(1, time.Second, 8081)); err != nil {
		t.Fatal(err)
	}
	c := newADSClient(t, addr, "envoy-nack")
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ListenerType})
	l1 := c.recv()
	if l1.TypeUrl != resourcev3.ListenerType || len(l1.Resources) != 1 {
		t.Fatalf("LDS: %s with %d resources", l1.TypeUrl, len(l1.Resources))
	}
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ListenerType, VersionInfo: l1.VersionInfo, ResponseNonce: l1.Nonce})
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.RouteType, ResourceNames: []string{"http_0.0.0.0_8081"}})
	r1 := c.recv()
	if got := routeTimeout(t, r1, "http_0.0.0.0_8081"); got != time.Second {
		t.Fatalf("version 1 route timeout %v", got)
	}
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.RouteType, VersionInfo: r1.VersionInfo, ResponseNonce: r1.Nonce, ResourceNames: []string{"http_0.0.0.0_8081"}})
	waitFor(t, "the RDS ACK", func() bool { return acked(srv, "envoy-nack", resourcev3.RouteType, "1") })

	// Version 2 adds listener 8082 and changes 8081's route; the node
	// rejects the listener update and keeps its RDS subscription.
	if err := srv.Push(listenersSnapshot(2, 2*time.Second, 8081, 8082)); err != nil {
		t.Fatal(err)
	}
	var rds *discoveryv3.DiscoveryResponse
	for rds == nil {
		r := c.recv()
		switch r.TypeUrl {
		case resourcev3.ListenerType:
			c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ListenerType, VersionInfo: l1.VersionInfo, ResponseNonce: r.Nonce,
				ErrorDetail: &statuspb.Status{Code: 3, Message: "listener http_0.0.0.0_8082: cannot bind 0.0.0.0:8082: Address already in use"}})
		case resourcev3.RouteType:
			rds = r
		}
	}
	if rds.VersionInfo != "2" || len(rds.Resources) != 1 {
		t.Fatalf("RDS after the NACK: version %q with %d resources, want version 2 with the one subscribed", rds.VersionInfo, len(rds.Resources))
	}
	if got := routeTimeout(t, rds, "http_0.0.0.0_8081"); got != 2*time.Second {
		t.Fatalf("route timeout %v after the update, want 2s", got)
	}

	// Once the node accepts the listener and subscribes to its route as
	// well, it gets it at the same version.
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.RouteType, VersionInfo: "2", ResponseNonce: rds.Nonce,
		ResourceNames: []string{"http_0.0.0.0_8081", "http_0.0.0.0_8082"}})
	both := c.recv()
	if both.TypeUrl != resourcev3.RouteType || both.VersionInfo != "2" || len(both.Resources) != 2 {
		t.Fatalf("after subscribing to both: %s version %q with %d resources", both.TypeUrl, both.VersionInfo, len(both.Resources))
	}
}

// TestEnvoyPushOrder: one push that changes every resource type reaches an
// ADS stream in xDS order — clusters, endpoints, listeners, routes — so
// nothing arrives before what it references (the order ADS mode gave).
func TestEnvoyPushOrder(t *testing.T) {
	srv, addr := startServer(t)
	if err := srv.Push(listenersSnapshot(1, time.Second, 8081)); err != nil {
		t.Fatal(err)
	}
	c := newADSClient(t, addr, "envoy-order")
	ack := func(r *discoveryv3.DiscoveryResponse, names ...string) {
		c.send(&discoveryv3.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce, ResourceNames: names})
	}
	// Subscribe as Envoy does: CDS, then EDS for the clusters, LDS, then
	// RDS for the listeners' routes.
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType})
	cds := c.recv()
	ack(cds)
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: []string{"default/api8081"}})
	eds := c.recv()
	ack(eds, "default/api8081")
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ListenerType})
	lds := c.recv()
	ack(lds)
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.RouteType, ResourceNames: []string{"http_0.0.0.0_8081"}})
	rds := c.recv()
	ack(rds, "http_0.0.0.0_8081")
	for _, r := range []*discoveryv3.DiscoveryResponse{cds, eds, lds, rds} {
		if r.VersionInfo != "1" || len(r.Resources) != 1 {
			t.Fatalf("%s: version %q with %d resources", r.TypeUrl, r.VersionInfo, len(r.Resources))
		}
	}
	waitFor(t, "the RDS ACK", func() bool { return acked(srv, "envoy-order", resourcev3.RouteType, "1") })

	// Every type changes: a new endpoint port, cluster and listener set, route timeout.
	next := listenersSnapshot(2, 3*time.Second, 8081, 8082)
	next.Services[0].Endpoints[0].Port = 7777
	next.Services[0].ConnectTimeout = 4 * time.Second
	for round := 0; round < 5; round++ {
		if err := srv.Push(next); err != nil {
			t.Fatal(err)
		}
		version := srv.Status().Version
		var order []string
		for len(order) < 4 {
			r := c.recv()
			if r.VersionInfo != version {
				t.Fatalf("%s version %q, want %s", r.TypeUrl, r.VersionInfo, version)
			}
			order = append(order, r.TypeUrl)
			switch r.TypeUrl {
			case resourcev3.EndpointType:
				ack(r, "default/api8081")
			case resourcev3.RouteType:
				ack(r, "http_0.0.0.0_8081")
			default:
				ack(r)
			}
		}
		want := []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType}
		if fmt.Sprint(order) != fmt.Sprint(want) {
			t.Fatalf("push %s arrived as %v, want %v", version, order, want)
		}
		waitFor(t, "the RDS ACK", func() bool { return acked(srv, "envoy-order", resourcev3.RouteType, version) })
		next.Version++
		next.Services[0].Endpoints[0].Port++
	}
}

// TestEnvoySnapshotConsistent: what the cache serves Envoy is a consistent
// snapshot (every EDS and RDS name referenced, go-control-plane's
// Consistent) whose resources pass their proto validation (ValidateAll),
// after the staged push of a reload that adds and removes listeners.
func TestEnvoySnapshotConsistent(t *testing.T) {
	srv, _ := startServer(t)
	for i, ports := range [][]int{{8081}, {8081, 8082, 8083}, {8082}} {
		if err := srv.Push(listenersSnapshot(uint64(i+1), time.Second, ports...)); err != nil {
			t.Fatal(err)
		}
		rs, err := srv.cache.GetSnapshot(GroupEnvoy)
		if err != nil {
			t.Fatal(err)
		}
		snap := rs.(*cachev3.Snapshot)
		if err := snap.Consistent(); err != nil {
			t.Errorf("push %d: %v", i+1, err)
		}
		if got := len(snap.GetResources(resourcev3.ListenerType)); got != len(ports) {
			t.Errorf("push %d: %d listeners, want %d", i+1, got, len(ports))
		}
		for typ := types.ResponseType(0); typ < types.UnknownType; typ++ {
			for name, r := range snap.Resources[typ].Items {
				v, ok := r.Resource.(interface{ ValidateAll() error })
				if !ok {
					t.Fatalf("%s has no ValidateAll", name)
				}
				if err := v.ValidateAll(); err != nil {
					t.Errorf("push %d: %s: %v", i+1, name, err)
				}
			}
		}
	}
}
