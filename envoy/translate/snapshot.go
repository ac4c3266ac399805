package translate

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// Snapshot builds a go-control-plane snapshot of r at version and checks it
// is self-consistent: every RDS name a listener (or API listener) refers to
// is present, and every EDS cluster has its ClusterLoadAssignment.
func (r *Resources) Snapshot(version string) (*cachev3.Snapshot, error) {
	m := map[resourcev3.Type][]types.Resource{}
	for _, x := range r.Listeners {
		m[resourcev3.ListenerType] = append(m[resourcev3.ListenerType], x)
	}
	for _, x := range r.Routes {
		m[resourcev3.RouteType] = append(m[resourcev3.RouteType], x)
	}
	for _, x := range r.Clusters {
		m[resourcev3.ClusterType] = append(m[resourcev3.ClusterType], x)
	}
	for _, x := range r.Endpoints {
		m[resourcev3.EndpointType] = append(m[resourcev3.EndpointType], x)
	}
	for _, x := range r.Secrets {
		m[resourcev3.SecretType] = append(m[resourcev3.SecretType], x)
	}
	snap, err := cachev3.NewSnapshot(version, m)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", version, err)
	}
	if err := r.consistent(snap); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", version, err)
	}
	return snap, nil
}

// consistent is go-control-plane's Consistent plus the references it does
// not follow: API listeners' RDS names.
func (r *Resources) consistent(snap *cachev3.Snapshot) error {
	hasAPIListener := false
	for _, l := range r.Listeners {
		if l.GetApiListener() != nil {
			hasAPIListener = true
		}
	}
	if !hasAPIListener {
		return snap.Consistent()
	}
	routes := map[string]bool{}
	for _, rc := range r.Routes {
		routes[rc.GetName()] = true
	}
	for _, l := range r.Listeners {
		mgr, err := apiListenerHCM(l)
		if err != nil {
			return err
		}
		if mgr == nil {
			continue
		}
		if name := mgr.GetRds().GetRouteConfigName(); !routes[name] {
			return fmt.Errorf("listener %q refers to route configuration %q, which is missing", l.GetName(), name)
		}
	}
	cla := map[string]bool{}
	for _, e := range r.Endpoints {
		cla[e.GetClusterName()] = true
	}
	for _, c := range r.Clusters {
		if c.GetType() == clusterv3.Cluster_EDS && !cla[c.GetName()] {
			return fmt.Errorf("cluster %q has no cluster load assignment", c.GetName())
		}
	}
	return nil
}
