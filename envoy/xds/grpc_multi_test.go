package xds

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/xds"
)

// writeAPI writes conf.d/<name>.yaml: ApiInstance name on its own port,
// every request to backend.
func writeAPI(t *testing.T, dir, name string, port int, backend string) {
	t.Helper()
	yaml := fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: %s
spec:
  address: http://127.0.0.1:%d
  services:
    upstream:
      address: http://%s
`, name, port, backend)
	if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
}

// xdsResolver is gRPC's own xDS resolver with a bootstrap naming addr and
// node: every channel built with it shares one xDS client, as the channels
// of one process do.
func xdsResolver(t *testing.T, addr, node string) resolver.Builder {
	t.Helper()
	b, err := xds.NewXDSResolverWithConfigForTesting([]byte(fmt.Sprintf(`{
  "xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
  "node": {"id": %q, "cluster": "flexgw-test"}
}`, addr, node)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dialXDS(t *testing.T, b resolver.Builder, api string) healthpb.HealthClient {
	t.Helper()
	cc, err := grpc.NewClient("xds:///"+api, grpc.WithResolvers(b), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return healthpb.NewHealthClient(cc)
}

// reaches makes one RPC through c and fails the test unless it lands on
// backend.
func reaches(t *testing.T, c healthpb.HealthClient, api, backend string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var p peer.Peer
	if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p), grpc.WaitForReady(true)); err != nil {
		t.Fatalf("xds:///%s: %v", api, err)
	}
	if p.Addr.String() != backend {
		t.Fatalf("xds:///%s reached %s, want %s", api, p.Addr, backend)
	}
}

// TestProxylessGRPCSeveralAPIs drives gRPC's xDS client against a config of
// several ApiInstances, each client naming only the one it dials: clients
// that connect before and after reloads that add and remove APIs, in one
// process (a shared xDS client) and in another (their own).
func TestProxylessGRPCSeveralAPIs(t *testing.T) {
	backends := map[string]string{}
	for _, api := range []string{"alpha", "beta", "grpc-api", "late"} {
		backends[api] = startBackend(t)
	}
	srv, addr := startServer(t)
	dir := t.TempDir()
	writeAPI(t, dir, "alpha", 18081, backends["alpha"])
	writeAPI(t, dir, "beta", 18082, backends["beta"])
	loadAndPush(t, srv, dir, 1)

	// Two APIs from the start: each client names one of them.
	proc := xdsResolver(t, addr, "process-1")
	alpha := dialXDS(t, proc, "alpha")
	reaches(t, alpha, "alpha", backends["alpha"])
	beta := dialXDS(t, proc, "beta")
	reaches(t, beta, "beta", backends["beta"])
	other := xdsResolver(t, addr, "process-2")
	reaches(t, dialXDS(t, other, "beta"), "beta", backends["beta"])

	// A third API added by a reload: a client connecting after it, in a
	// process that already watches other listeners and in a new one.
	writeAPI(t, dir, "grpc-api", 18083, backends["grpc-api"])
	loadAndPush(t, srv, dir, 2)
	reaches(t, dialXDS(t, proc, "grpc-api"), "grpc-api", backends["grpc-api"])
	reaches(t, dialXDS(t, xdsResolver(t, addr, "process-3"), "grpc-api"), "grpc-api", backends["grpc-api"])
	reaches(t, alpha, "alpha", backends["alpha"])

	// A client dialing an API before a reload adds it is served once it
	// exists.
	late := dialXDS(t, proc, "late")
	lateDone := make(chan struct{})
	go func() {
		defer close(lateDone)
		reaches(t, late, "late", backends["late"])
	}()
	waitFor(t, "process-1 to subscribe to listener late", func() bool {
		return srv.Status().Version == "2" && acked(srv, "process-1", resourcev3.ListenerType, "2")
	})
	writeAPI(t, dir, "late", 18084, backends["late"])
	loadAndPush(t, srv, dir, 3)
	<-lateDone

	// An existing API's upstream changes: its watching clients follow.
	moved := startBackend(t)
	writeAPI(t, dir, "beta", 18082, moved)
	loadAndPush(t, srv, dir, 4)
	waitFor(t, "process-1 to ACK version 4's routes", func() bool {
		return acked(srv, "process-1", resourcev3.RouteType, "4") || acked(srv, "process-1", resourcev3.ClusterType, "4")
	})
	waitFor(t, "beta's clients to reach the new upstream", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var p peer.Peer
		_, err := beta.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p), grpc.WaitForReady(true))
		return err == nil && p.Addr.String() == moved
	})

	// alpha removed by a reload: its client fails, the others keep working.
	if err := os.Remove(filepath.Join(dir, "alpha.yaml")); err != nil {
		t.Fatal(err)
	}
	loadAndPush(t, srv, dir, 5)
	waitFor(t, "alpha's client to see alpha removed", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := alpha.Check(ctx, &healthpb.HealthCheckRequest{})
		return err != nil
	})
	reaches(t, dialXDS(t, proc, "grpc-api"), "grpc-api", backends["grpc-api"])
	reaches(t, late, "late", backends["late"])

	// alpha back: the same client connection is served again.
	writeAPI(t, dir, "alpha", 18081, backends["alpha"])
	loadAndPush(t, srv, dir, 6)
	waitFor(t, "alpha's client to reach alpha again", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var p peer.Peer
		_, err := alpha.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p), grpc.WaitForReady(true))
		return err == nil && p.Addr.String() == backends["alpha"]
	})
	if st := srv.Status(); st.LastNACK != nil {
		t.Errorf("unexpected NACK: %+v", st.LastNACK)
	}
}
