package xds

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flexgw/flexgw/ir"
)

// snapshotWith builds a one-API snapshot whose service endpoint port is
// port, so each version is distinguishable on the wire.
func snapshotWith(version uint64, port int) *ir.Snapshot {
	svc := &ir.Service{Name: "svc", Namespace: "default", Protocol: ir.HTTP,
		Endpoints: []ir.Endpoint{{Host: "127.0.0.1", Port: port}}, LB: ir.RoundRobin}
	api := &ir.API{Name: "api", Namespace: "default", BasePath: "/",
		Routes: []*ir.Route{{Name: "r", Destinations: []ir.Destination{{Service: "default/svc", Weight: 100}}}}}
	return &ir.Snapshot{Version: version,
		Listeners: []*ir.Listener{{Name: "http_0.0.0.0_8081", Protocol: ir.HTTP, Host: "0.0.0.0", Port: 8081, APIs: []*ir.API{api}}},
		Services:  []*ir.Service{svc}}
}

// adsClient is a stand-in for Envoy's ADS client (Envoy cannot be
// installed here), speaking the state-of-the-world protocol over the real
// gRPC service: subscribe, receive, ACK or NACK.
type adsClient struct {
	t      *testing.T
	node   *corev3.Node
	conn   *grpc.ClientConn
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	cancel context.CancelFunc
	first  bool
}

func dial(t *testing.T, target string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func newADSClient(t *testing.T, target, nodeID string) *adsClient {
	t.Helper()
	c := &adsClient{t: t, node: &corev3.Node{Id: nodeID, Cluster: "edge", UserAgentName: "envoy"}, conn: dial(t, target)}
	c.open()
	t.Cleanup(c.close)
	return c
}

func (c *adsClient) open() {
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(c.conn).StreamAggregatedResources(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	c.stream, c.cancel, c.first = stream, cancel, true
}

func (c *adsClient) close() { c.cancel() }

// send sends a request; like Envoy, the node only on a stream's first one.
func (c *adsClient) send(req *discoveryv3.DiscoveryRequest) {
	c.t.Helper()
	if c.first {
		req.Node = c.node
		c.first = false
	}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

// recv waits for the next response (bounded, so a missing one fails).
func (c *adsClient) recv() *discoveryv3.DiscoveryResponse {
	c.t.Helper()
	type result struct {
		r   *discoveryv3.DiscoveryResponse
		err error
	}
	ch := make(chan result, 1)
	go func() { r, err := c.stream.Recv(); ch <- result{r, err} }()
	select {
	case res := <-ch:
		if res.err != nil {
			c.t.Fatal(res.err)
		}
		return res.r
	case <-time.After(30 * time.Second):
		c.t.Fatal("no xDS response within 30s")
		return nil
	}
}

func TestNACKThenNextGoodVersion(t *testing.T) {
	srv, addr := startServer(t)
	if err := srv.Push(snapshotWith(1, 9001)); err != nil {
		t.Fatal(err)
	}
	c := newADSClient(t, addr, "envoy-1")
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType})
	r1 := c.recv()
	if r1.VersionInfo != "1" || len(r1.Resources) != 1 {
		t.Fatalf("first response: version %q, %d resources", r1.VersionInfo, len(r1.Resources))
	}
	// Reject it, as Envoy does: the last accepted version (none) and the
	// nonce of the response, with the reason.
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: r1.Nonce,
		ErrorDetail: &statuspb.Status{Code: 3, Message: "cluster default/svc: unknown field"}})
	waitFor(t, "the NACK to be recorded", func() bool { return srv.Status().LastNACK != nil })
	st := srv.Status()
	n := st.LastNACK
	if n.Node != "envoy-1" || n.TypeURL != resourcev3.ClusterType || n.Version != "1" ||
		!strings.Contains(n.Error, "unknown field") || len(n.Resources) != 1 || n.Resources[0] != "default/svc" {
		t.Errorf("NACK = %+v", n)
	}
	if got := gathered(t, srv, "flexgw_xds_nacks_total", "Cluster"); got != 1 {
		t.Errorf("flexgw_xds_nacks_total{type=Cluster} = %v, want 1", got)
	}

	// The next accepted reload reaches the node, which ACKs it.
	if err := srv.Push(snapshotWith(2, 9002)); err != nil {
		t.Fatal(err)
	}
	r2 := c.recv()
	if r2.VersionInfo != "2" {
		t.Fatalf("after the NACK, version %q, want 2", r2.VersionInfo)
	}
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: r2.VersionInfo, ResponseNonce: r2.Nonce})
	waitFor(t, "the ACK", func() bool { return acked(srv, "envoy-1", resourcev3.ClusterType, "2") })
}

// gathered reads one series of the server's collector through a registry,
// as a scrape would.
func gathered(t *testing.T, srv *Server, name, label string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(srv.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestCollectorExposesNames(t *testing.T) {
	srv, err := NewServer(Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Push(snapshotWith(1, 9001)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Push(&ir.Snapshot{Version: 2, Services: []*ir.Service{{Name: "x", Namespace: "d"}}}); err == nil {
		t.Fatal("want an error for a service without endpoints")
	}
	if got := gathered(t, srv, "flexgw_xds_pushes_total", "ok"); got != 1 {
		t.Errorf("pushes ok = %v", got)
	}
	if got := gathered(t, srv, "flexgw_xds_pushes_total", "error"); got != 1 {
		t.Errorf("pushes error = %v", got)
	}
}

func TestManyNodesAndReconnect(t *testing.T) {
	srv, addr := startServer(t)
	if err := srv.Push(snapshotWith(1, 9001)); err != nil {
		t.Fatal(err)
	}
	const nodes = 25
	clients := make([]*adsClient, nodes)
	for i := range clients {
		clients[i] = newADSClient(t, addr, fmt.Sprintf("envoy-%02d", i))
	}
	// Every node gets version 1, then version 2 after one push.
	var wg sync.WaitGroup
	errs := make(chan string, nodes*2)
	for _, c := range clients {
		wg.Add(1)
		go func(c *adsClient) {
			defer wg.Done()
			c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType})
			r, err := c.stream.Recv()
			if err != nil || r.VersionInfo != "1" {
				errs <- fmt.Sprintf("%s: %v %v", c.node.Id, r.GetVersionInfo(), err)
				return
			}
			if err := c.stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: "1", ResponseNonce: r.Nonce}); err != nil {
				errs <- err.Error()
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	waitFor(t, "every node to ACK version 1", func() bool {
		for _, c := range clients {
			if !acked(srv, c.node.Id, resourcev3.ClusterType, "1") {
				return false
			}
		}
		return true
	})
	if err := srv.Push(snapshotWith(2, 9002)); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if r := c.recv(); r.VersionInfo != "2" {
			t.Fatalf("%s got version %q, want 2", c.node.Id, r.VersionInfo)
		}
	}

	// A node that reconnects after missing a push gets the current version.
	c := clients[0]
	c.close()
	waitFor(t, "the node to be seen as disconnected", func() bool {
		for _, n := range srv.Status().Nodes {
			if n.ID == c.node.Id {
				return !n.Connected
			}
		}
		return false
	})
	if err := srv.Push(snapshotWith(3, 9003)); err != nil {
		t.Fatal(err)
	}
	c.open()
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: "2"})
	r := c.recv()
	if r.VersionInfo != "3" {
		t.Fatalf("after reconnect: version %q, want 3", r.VersionInfo)
	}
	cl := &clusterv3.Cluster{}
	if err := r.Resources[0].UnmarshalTo(cl); err != nil || cl.Name != "default/svc" {
		t.Fatalf("cluster %v: %v", cl.GetName(), err)
	}
}

// TestTranslationErrorKeepsLastGood: a snapshot that does not translate is
// refused with an error naming the resource, and clients (old and new)
// keep getting the previous version.
func TestTranslationErrorKeepsLastGood(t *testing.T) {
	srv, addr := startServer(t)
	if err := srv.Push(snapshotWith(1, 9001)); err != nil {
		t.Fatal(err)
	}
	bad := snapshotWith(2, 9002)
	bad.Services[0].Endpoints = nil
	err := srv.Push(bad)
	if err == nil || !strings.Contains(err.Error(), `cluster "default/svc"`) {
		t.Fatalf("Push(bad) = %v, want an error naming the cluster", err)
	}
	st := srv.Status()
	if st.Version != "1" || st.SnapshotVersion != 1 || !strings.Contains(st.LastPushError, "no endpoints") {
		t.Errorf("status after a bad push = %+v", st)
	}
	c := newADSClient(t, addr, "late-envoy")
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType})
	if r := c.recv(); r.VersionInfo != "1" {
		t.Fatalf("new client got version %q, want the last good 1", r.VersionInfo)
	}
	if err := srv.Push(snapshotWith(3, 9003)); err != nil {
		t.Fatal(err)
	}
	if st := srv.Status(); st.Version != "2" || st.LastPushError != "" {
		t.Errorf("status after a good push = %+v", st)
	}
}

// TestDeltaADSOverUnixSocket: the incremental protocol, on a unix socket.
func TestDeltaADSOverUnixSocket(t *testing.T) {
	srv, err := NewServer(Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "xds.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, sock) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := srv.Push(snapshotWith(1, 9001)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the socket", func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	conn := dial(t, "unix://"+sock)
	sctx, scancel := context.WithCancel(context.Background())
	defer scancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(sctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "delta-envoy", UserAgentName: "envoy"}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType, ResourceNamesSubscribe: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	r, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Resources) != 1 || r.Resources[0].Name != "default/svc" {
		t.Fatalf("delta response: %v", r)
	}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: r.Nonce}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delta ACK", func() bool { return acked(srv, "delta-envoy", resourcev3.ClusterType, "1") })
	// A changed cluster is sent again; only what changed.
	next := snapshotWith(2, 9002)
	next.Services[0].ConnectTimeout = 3 * time.Second
	if err := srv.Push(next); err != nil {
		t.Fatal(err)
	}
	r, err = stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	cl := &clusterv3.Cluster{}
	if len(r.Resources) != 1 || r.Resources[0].Resource.UnmarshalTo(cl) != nil || cl.ConnectTimeout.AsDuration() != 3*time.Second {
		t.Fatalf("delta update: %v", r)
	}
}

func TestStartClose(t *testing.T) {
	srv, err := NewServer(Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Push(snapshotWith(1, 9001)); err != nil {
		t.Fatal(err)
	}
	c := newADSClient(t, srv.Addr().String(), "runner-envoy")
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ListenerType})
	if r := c.recv(); r.VersionInfo != "1" || len(r.Resources) != 1 {
		t.Fatalf("listeners: %v", r)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background(), "not-an-address"); err == nil {
		t.Fatal("bad address accepted")
	}
}

func TestCloseTwice(t *testing.T) {
	srv, err := NewServer(Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Check refuses what Push would, and its translation serves the Push of
// the same snapshot (a reload translates once), never the Push of another.
func TestCheckThenPush(t *testing.T) {
	srv, addr := startServer(t)
	endpointPort := func() uint32 {
		t.Helper()
		eps := srv.Result().Envoy.Endpoints
		if len(eps) != 1 {
			t.Fatalf("endpoints %v", eps)
		}
		return eps[0].GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue()
	}
	bad := snapshotWith(1, 9001)
	bad.Services[0].Endpoints = nil
	if err := srv.Check(bad); err == nil || !strings.Contains(err.Error(), `cluster "default/svc"`) {
		t.Fatalf("Check(bad) = %v, want an error naming the cluster", err)
	}
	if st := srv.Status(); st.Version != "" {
		t.Fatalf("a check pushed: %+v", st)
	}

	// Checked one snapshot, pushed another: the pushed one is served.
	if err := srv.Check(snapshotWith(2, 9002)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Push(snapshotWith(3, 9003)); err != nil {
		t.Fatal(err)
	}
	if p := endpointPort(); p != 9003 {
		t.Fatalf("served endpoint port %d, want 9003 (the pushed snapshot, not the checked one)", p)
	}

	// Checked then pushed: the check's translation is what is served,
	// without the proxyless resources no gRPC client asked for.
	next := snapshotWith(4, 9004)
	if err := srv.Check(next); err != nil {
		t.Fatal(err)
	}
	checked := srv.checked.res
	if err := srv.Push(next); err != nil {
		t.Fatal(err)
	}
	if srv.Result() != checked || endpointPort() != 9004 || len(srv.Result().GRPC.Listeners) != 0 {
		t.Fatalf("push after check: result %p (checked %p), port %d, %d gRPC listeners", srv.Result(), checked, endpointPort(), len(srv.Result().GRPC.Listeners))
	}
	c := newADSClient(t, addr, "envoy-after-check")
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType})
	if r := c.recv(); r.VersionInfo != "2" {
		t.Fatalf("client got version %q, want 2", r.VersionInfo)
	}
}
