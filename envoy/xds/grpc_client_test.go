package xds

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/flexgw/flexgw/snapshot"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/xds"
)

// startBackend serves gRPC health on a :0 port; the caller tells backends
// apart by the peer address of each RPC.
func startBackend(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// startServer runs the ADS server on a :0 port until the test ends.
func startServer(t *testing.T) (*Server, string) {
	t.Helper()
	srv, err := NewServer(Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeListener(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return srv, lis.Addr().String()
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// weightedConfig writes a Flex config directory: ApiInstance "flights"
// routing every request 'stable:beta' by weight.
func weightedConfig(t *testing.T, dir, stable, beta string, ws, wb int) {
	t.Helper()
	yaml := fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: Service
metadata:
  name: stable
spec:
  address: http://%s
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: Service
metadata:
  name: beta
spec:
  address: http://%s
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: flights
spec:
  address: http://127.0.0.1:18081
---
apiVersion: gateway.mulesoft.com/v1alpha1
kind: PolicyBinding
metadata:
  name: flights-split
spec:
  targetRef:
    name: flights
  policyRef:
    name: route-weighted
  config:
    routes:
      - weight: %d
        destinationRef:
          name: stable
      - weight: %d
        destinationRef:
          name: beta
`, stable, beta, ws, wb)
	if err := os.WriteFile(filepath.Join(dir, "flights.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
}

func loadAndPush(t *testing.T, srv *Server, dir string, version uint64) {
	t.Helper()
	snap, err := snapshot.LoadDir(dir, version)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Push(snap); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// acked reports whether node has accepted version for typeURL.
func acked(srv *Server, node, typeURL, version string) bool {
	for _, n := range srv.Status().Nodes {
		if n.ID == node && n.Acked[typeURL] == version {
			return true
		}
	}
	return false
}

// TestProxylessGRPCWeightedSplit drives gRPC's own xDS resolver and
// balancers against the ADS server: a client dialing xds:///flights splits
// RPCs 80/20 between two backends, then 20/80 after the config file is
// edited and pushed, on the same client connection.
func TestProxylessGRPCWeightedSplit(t *testing.T) {
	stable, beta := startBackend(t), startBackend(t)
	srv, addr := startServer(t)
	dir := t.TempDir()
	weightedConfig(t, dir, stable, beta, 80, 20)
	loadAndPush(t, srv, dir, 1)

	const node = "proxyless-client"
	bootstrap := fmt.Sprintf(`{
  "xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
  "node": {"id": %q, "cluster": "flexgw-test"}
}`, addr, node)
	builder, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///flights", grpc.WithResolvers(builder), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)

	// split sends n RPCs and returns the share that reached beta.
	split := func(n int) float64 {
		t.Helper()
		toBeta := 0
		for i := 0; i < n; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			var p peer.Peer
			_, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p), grpc.WaitForReady(true))
			cancel()
			if err != nil {
				t.Fatalf("rpc %d: %v", i, err)
			}
			switch p.Addr.String() {
			case beta:
				toBeta++
			case stable:
			default:
				t.Fatalf("rpc %d reached %s, neither backend", i, p.Addr)
			}
		}
		return float64(toBeta) / float64(n)
	}
	// 1,000 RPCs: the binomial standard deviation of the share is 1.3
	// points, so ±10 points is more than 7 deviations: a failure means the
	// weights are wrong, not bad luck.
	const n, tolerance = 1000, 0.10
	if got := split(n); got < 0.20-tolerance || got > 0.20+tolerance {
		t.Fatalf("beta share = %.3f, want 0.20 ± %.2f", got, tolerance)
	}

	weightedConfig(t, dir, stable, beta, 20, 80)
	loadAndPush(t, srv, dir, 2)
	version := srv.Status().Version
	waitFor(t, "the gRPC client to ACK the new routes", func() bool {
		return acked(srv, node, resourcev3.RouteType, version)
	})
	if got := split(n); got < 0.80-tolerance || got > 0.80+tolerance {
		t.Fatalf("after the edit, beta share = %.3f, want 0.80 ± %.2f", got, tolerance)
	}
	st := srv.Status()
	if st.LastNACK != nil {
		t.Errorf("unexpected NACK: %+v", st.LastNACK)
	}
}

// TestProxylessGRPCClientBeforeFirstPush: a gRPC client that connects
// before the agent has any snapshot is served by the first push.
func TestProxylessGRPCClientBeforeFirstPush(t *testing.T) {
	backend := startBackend(t)
	srv, addr := startServer(t)
	builder, err := xds.NewXDSResolverWithConfigForTesting([]byte(fmt.Sprintf(`{
  "xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
  "node": {"id": "early-client"}
}`, addr)))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///flights", grpc.WithResolvers(builder), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cc.Connect()
	waitFor(t, "the gRPC client to connect", func() bool {
		for _, n := range srv.Status().Nodes {
			if n.ID == "early-client" && n.Group == GroupGRPC {
				return true
			}
		}
		return false
	})
	dir := t.TempDir()
	weightedConfig(t, dir, backend, backend, 50, 50)
	loadAndPush(t, srv, dir, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var p peer.Peer
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p), grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	if p.Addr.String() != backend {
		t.Fatalf("reached %s, want %s", p.Addr, backend)
	}
}
