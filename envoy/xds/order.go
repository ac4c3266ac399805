package xds

import (
	"context"
	"fmt"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// Why the cache runs in non-ADS mode and orders pushes itself.
//
// go-control-plane's snapshot cache in ADS mode answers a request that names
// resources only when the names cover every resource of that type in the
// snapshot ("ADS mode: not responding ... not listed"). A proxyless gRPC
// client names exactly the listener it dials, so with two APIs it never gets
// an answer; an Envoy whose LDS update adding a listener was NACKed never
// subscribes to that listener's route, so every later route change stalls
// too. In non-ADS mode the cache answers any subset and tracks what it
// returned per stream, so a name added later is answered with the same
// version. What ADS mode also did is order the answers of one SetSnapshot
// by type (clusters, endpoints, listeners, routes, ...), the order Envoy's
// xDS protocol asks for so nothing is referenced before it arrives
// ("eventual consistency considerations"). stagedSet keeps that order: it
// moves a group to the new snapshot one resource type at a time, in the
// cache's type order, and the ordered ADS server (sotw.WithOrderedADS;
// delta streams share one response queue already) sends each stream's
// answers in the order the cache produced them.

// stagedSet makes next the snapshot of group, one changed resource type per
// SetSnapshot call in response-type order, starting from cur (the group's
// current snapshot, nil for none). It returns next.
func stagedSet(ctx context.Context, c cachev3.SnapshotCache, group string, cur, next *cachev3.Snapshot) error {
	stage := &cachev3.Snapshot{}
	if cur != nil {
		stage.Resources = cur.Resources
	}
	var changed []int
	for i := range next.Resources {
		if stage.Resources[i].Version != next.Resources[i].Version {
			changed = append(changed, i)
		}
	}
	// All but the last changed type get a stage of their own; the last
	// stage is next itself.
	for n, i := range changed {
		if n == len(changed)-1 {
			break
		}
		stage.Resources[i] = next.Resources[i]
		// Each stage is a new value: the cache keeps the pointer it is
		// given, and delta clients' version maps are computed per value.
		s := &cachev3.Snapshot{Resources: stage.Resources}
		if err := c.SetSnapshot(ctx, group, s); err != nil {
			return fmt.Errorf("set %s snapshot (stage %s): %w", group, typeName(types.ResponseType(i)), err)
		}
	}
	if err := c.SetSnapshot(ctx, group, next); err != nil {
		return fmt.Errorf("set %s snapshot: %w", group, err)
	}
	return nil
}

func typeName(t types.ResponseType) string {
	u, err := cachev3.GetResponseTypeURL(t)
	if err != nil {
		return fmt.Sprint(int(t))
	}
	return u
}
