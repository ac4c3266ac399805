// Package xds is flexgw's Aggregated Discovery Service: it translates each
// accepted ir.Snapshot (envoy/translate) into a versioned xDS snapshot and
// serves it over gRPC, state-of-the-world and delta, to Envoy proxies and
// to proxyless gRPC clients.
//
// A translation error leaves the last good snapshot in place, so connected
// clients keep what they run. NACKs are logged with Envoy's error detail,
// counted, and reported by Status.
package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	sotwv3 "github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/flexgw/flexgw/envoy/translate"
	"github.com/flexgw/flexgw/ir"
)

// DefaultAddress is the agent's default --xds-address.
const DefaultAddress = "127.0.0.1:18000"

// Node groups: every node of a group receives the same snapshot.
const (
	// GroupEnvoy is every Envoy proxy.
	GroupEnvoy = "envoy"
	// GroupGRPC is every proxyless gRPC client (API listeners).
	GroupGRPC = "grpc"
)

// Options configure a Server.
type Options struct {
	// Translate is passed to translate.Translate on every Push.
	Translate translate.Options
	// Logger receives NACKs, pushes and stream events; nil means slog.Default.
	Logger *slog.Logger
	// Register adds more services to the ADS gRPC server: the policy
	// services Envoy calls back into (RateLimitService, ext_authz) share
	// its address, so one cluster in the bootstrap reaches both.
	Register []func(*grpc.Server)
}

// Server is the ADS server. Push is safe to call concurrently with
// serving; a Server serves on one address at a time.
type Server struct {
	opts    Options
	log     *slog.Logger
	cache   cachev3.SnapshotCache
	metrics *metrics

	// pushMu serialises pushes and the first gRPC client's activation, so
	// the two groups' snapshots always come from the same IR snapshot.
	pushMu sync.Mutex
	// grpcWanted is set once a proxyless gRPC client has connected; until
	// then pushes skip the gRPC resources. Guarded by pushMu.
	grpcWanted bool
	// lastIR is the last accepted IR snapshot. Guarded by pushMu.
	lastIR *ir.Snapshot
	// checked is Check's translation, kept for the Push of the same
	// snapshot so a reload translates once. Guarded by pushMu.
	checked checkedSnapshot

	mu sync.Mutex
	// grpcActive records that activation has been requested. Guarded by mu.
	grpcActive bool
	seq        uint64
	status     Status
	result     *translate.Result
	streams    map[int64]string // stream id → node id
	// current is each group's snapshot in the cache, the start of the
	// next staged push (order.go). Guarded by pushMu.
	current map[string]*cachev3.Snapshot
	nodes   map[string]*NodeStatus

	// Start/Close lifecycle.
	stop      context.CancelFunc
	done      chan error
	addr      net.Addr
	closeOnce sync.Once
	closeErr  error
}

// Status is the server's state for /api/v1/status.
type Status struct {
	// Version is the xDS version last pushed ("" before the first push).
	Version string `json:"version"`
	// SnapshotVersion is the ir.Snapshot version behind Version.
	SnapshotVersion uint64    `json:"snapshotVersion"`
	PushedAt        time.Time `json:"pushedAt,omitzero"`
	// LastPushError is the last translation error; the previous snapshot
	// kept serving. Cleared by the next successful push.
	LastPushError string `json:"lastPushError,omitempty"`
	// LastNACK is the last rejection any node sent.
	LastNACK *NACK `json:"lastNack,omitempty"`
	// Nodes are the clients seen since the server started.
	Nodes []NodeStatus `json:"nodes"`
	// Warnings are the last translation's non-fatal gaps.
	Warnings []string `json:"warnings,omitempty"`
}

// NodeStatus is what one node last said about what it was sent.
type NodeStatus struct {
	ID        string    `json:"id"`
	Cluster   string    `json:"cluster,omitempty"`
	Group     string    `json:"group"`
	UserAgent string    `json:"userAgent,omitempty"`
	Connected bool      `json:"connected"`
	LastSeen  time.Time `json:"lastSeen"`
	// Acked maps a resource type URL to the last version the node accepted.
	Acked map[string]string `json:"acked,omitempty"`
	// LastNACK is the node's last rejection, nil if it never rejected.
	LastNACK *NACK `json:"lastNack,omitempty"`
}

// NACK is one rejected response.
type NACK struct {
	Node    string    `json:"node"`
	TypeURL string    `json:"typeUrl"`
	Version string    `json:"version"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
	// Resources names what the rejected response held, when known.
	Resources []string `json:"resources,omitempty"`
}

// NewServer returns a server with no snapshot; clients that connect before
// the first Push wait for it.
func NewServer(opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "xds")
	s := &Server{
		opts:    opts,
		log:     log,
		metrics: newMetrics(),
		streams: map[int64]string{},
		nodes:   map[string]*NodeStatus{},
		current: map[string]*cachev3.Snapshot{},
	}
	// Non-ADS mode: see order.go.
	s.cache = cachev3.NewSnapshotCache(false, groupHash{}, cacheLogger{log})
	return s, nil
}

// groupHash maps a node to its group: proxyless gRPC clients announce
// themselves with a "gRPC <language>" user agent; everything else is Envoy.
type groupHash struct{}

func (groupHash) ID(node *corev3.Node) string { return nodeGroup(node) }

func nodeGroup(node *corev3.Node) string {
	if strings.HasPrefix(node.GetUserAgentName(), "gRPC") {
		return GroupGRPC
	}
	return GroupEnvoy
}

// checkedSnapshot is a snapshot and its translation.
type checkedSnapshot struct {
	snap *ir.Snapshot
	res  *translate.Result
}

// Check translates snap as Push would, the proxyless gRPC resources
// included whether or not a gRPC client is connected, so it refuses
// exactly what `flexgw validate` refuses. The translation is kept for a
// following Push of the same snapshot: without it a reload translated
// twice (the check, then the push), and the discarded copy, live beside
// the served one, set the agent's peak memory.
func (s *Server) Check(snap *ir.Snapshot) error {
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	s.checked = checkedSnapshot{}
	res, err := translate.Translate(snap, s.opts.Translate)
	if err != nil {
		return err
	}
	s.checked = checkedSnapshot{snap: snap, res: res}
	return nil
}

// Push translates snap (or takes Check's translation of it) and, when it
// translates, makes it the snapshot of every node with a new version. On
// error the previous snapshot stays and the error names the resource at
// fault.
func (s *Server) Push(snap *ir.Snapshot) error {
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	res := s.checked.res
	if s.checked.snap != snap {
		res = nil
	}
	s.checked = checkedSnapshot{}
	if res == nil {
		opts := s.opts.Translate
		opts.SkipGRPC = !s.grpcWanted
		var err error
		if res, err = translate.Translate(snap, opts); err != nil {
			return s.pushFailed(snap, err)
		}
	} else if !s.grpcWanted {
		// No proxyless client yet: the check's gRPC resources are not
		// served, so they are not kept either (activateGRPC builds them).
		res.GRPC = translate.Resources{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	version := strconv.FormatUint(s.seq+1, 10)
	envoySnap, err := res.Envoy.Snapshot(version)
	if err != nil {
		return s.pushFailedLocked(snap, err)
	}
	var grpcSnap *cachev3.Snapshot
	if s.grpcWanted {
		if grpcSnap, err = res.GRPC.Snapshot(version); err != nil {
			return s.pushFailedLocked(snap, err)
		}
	}
	if err := s.setSnapshot(GroupEnvoy, envoySnap); err != nil {
		return s.pushFailedLocked(snap, err)
	}
	if grpcSnap != nil {
		if err := s.setSnapshot(GroupGRPC, grpcSnap); err != nil {
			return s.pushFailedLocked(snap, err)
		}
	}
	s.lastIR = snap
	s.seq++
	s.result = res
	s.status.Version = version
	s.status.SnapshotVersion = snap.Version
	s.status.PushedAt = time.Now()
	s.status.LastPushError = ""
	s.status.Warnings = res.Warnings
	s.metrics.pushes.WithLabelValues("ok").Inc()
	for _, w := range res.Warnings {
		s.log.Warn("translation gap", "version", version, "warning", w)
	}
	s.log.Info("pushed snapshot", "version", version, "snapshot_version", snap.Version,
		"listeners", len(res.Envoy.Listeners), "routes", len(res.Envoy.Routes),
		"clusters", len(res.Envoy.Clusters), "grpc_listeners", len(res.GRPC.Listeners))
	return nil
}

// activateGRPC builds the proxyless resources of the current snapshot for
// the first gRPC client; later pushes include them.
func (s *Server) activateGRPC() {
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	if s.grpcWanted {
		return
	}
	s.grpcWanted = true
	if s.lastIR == nil {
		return // the first push will include them
	}
	res, err := translate.Translate(s.lastIR, s.opts.Translate)
	if err != nil {
		s.log.Error("proxyless gRPC resources failed to translate", "err", err)
		return
	}
	s.mu.Lock()
	version := s.status.Version
	s.mu.Unlock()
	snap, err := res.GRPC.Snapshot(version)
	if err == nil {
		err = s.setSnapshot(GroupGRPC, snap)
	}
	if err != nil {
		s.log.Error("proxyless gRPC snapshot rejected", "version", version, "err", err)
		return
	}
	s.log.Info("first proxyless gRPC client: publishing API listeners", "version", version, "grpc_listeners", len(res.GRPC.Listeners))
}

// setSnapshot moves group to snap in xDS type order (order.go). The caller
// holds pushMu.
func (s *Server) setSnapshot(group string, snap *cachev3.Snapshot) error {
	if err := stagedSet(context.Background(), s.cache, group, s.current[group], snap); err != nil {
		return err
	}
	s.current[group] = snap
	return nil
}

func (s *Server) pushFailed(snap *ir.Snapshot, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pushFailedLocked(snap, err)
}

func (s *Server) pushFailedLocked(snap *ir.Snapshot, err error) error {
	s.status.LastPushError = err.Error()
	s.metrics.pushes.WithLabelValues("error").Inc()
	s.log.Error("snapshot rejected; serving the previous one", "snapshot_version", snapVersion(snap), "serving", s.status.Version, "err", err)
	return fmt.Errorf("xds: snapshot %d: %w", snapVersion(snap), err)
}

// Result returns the last pushed translation (nil before the first push);
// the stats mapper reads its ListenerStats and clusters.
func (s *Server) Result() *translate.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.result
}

// Status returns a copy of the server's state.
func (s *Server) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Nodes = make([]NodeStatus, 0, len(s.nodes))
	for _, id := range sortedNodeIDs(s.nodes) {
		n := *s.nodes[id]
		n.Acked = make(map[string]string, len(s.nodes[id].Acked))
		for k, v := range s.nodes[id].Acked {
			n.Acked[k] = v
		}
		st.Nodes = append(st.Nodes, n)
	}
	return st
}

// Serve listens on addr and serves until ctx is done. addr is host:port or
// a unix socket path ("/run/flexgw/xds.sock" or "unix:///run/...").
func (s *Server) Serve(ctx context.Context, addr string) error {
	lis, err := Listen(addr)
	if err != nil {
		return err
	}
	return s.ServeListener(ctx, lis)
}

// Listen opens addr: a unix socket when it is a path or a unix:// URL
// (a stale socket file is removed first), else TCP.
func Listen(addr string) (net.Listener, error) {
	if path, ok := unixPath(addr); ok {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("xds: remove stale socket %s: %w", path, err)
		}
		lis, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("xds: listen on unix socket %s: %w", path, err)
		}
		return lis, nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("xds: listen on %s: %w", addr, err)
	}
	return lis, nil
}

func unixPath(addr string) (string, bool) {
	switch {
	case strings.HasPrefix(addr, "unix://"):
		return strings.TrimPrefix(addr, "unix://"), true
	case strings.HasPrefix(addr, "unix:"):
		return strings.TrimPrefix(addr, "unix:"), true
	case strings.HasPrefix(addr, "/"):
		return addr, true
	}
	return "", false
}

// ServeListener serves on lis until ctx is done, then stops, closing open
// streams (clients reconnect to the next agent).
func (s *Server) ServeListener(ctx context.Context, lis net.Listener) error {
	gs := grpc.NewServer(
		grpc.MaxConcurrentStreams(1000),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	// Ordered: each stream's answers leave in the order the cache gave
	// them, which stagedSet makes xDS type order.
	srv := serverv3.NewServer(ctx, s.cache, s.callbacks(), sotwv3.WithOrderedADS())
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(gs, srv)
	listenerservice.RegisterListenerDiscoveryServiceServer(gs, srv)
	routeservice.RegisterRouteDiscoveryServiceServer(gs, srv)
	clusterservice.RegisterClusterDiscoveryServiceServer(gs, srv)
	endpointservice.RegisterEndpointDiscoveryServiceServer(gs, srv)
	secretservice.RegisterSecretDiscoveryServiceServer(gs, srv)
	for _, register := range s.opts.Register {
		register(gs)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			// ADS streams never end on their own, so a graceful stop would
			// only wait; clients reconnect and get the current version.
			gs.Stop()
		case <-done:
		}
	}()
	s.log.Info("serving ADS", "address", lis.Addr().String())
	err := gs.Serve(lis)
	if ctx.Err() != nil || errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("xds: serve %s: %w", lis.Addr(), err)
	}
	return nil
}

// cacheLogger routes go-control-plane's logging into slog.
type cacheLogger struct{ l *slog.Logger }

func (c cacheLogger) Debugf(f string, a ...any) { c.l.Debug(fmt.Sprintf(f, a...)) }
func (c cacheLogger) Infof(f string, a ...any)  { c.l.Debug(fmt.Sprintf(f, a...)) }

// Warnf is Debug: go-control-plane warns about routine protocol states.
func (c cacheLogger) Warnf(f string, a ...any)  { c.l.Debug(fmt.Sprintf(f, a...)) }
func (c cacheLogger) Errorf(f string, a ...any) { c.l.Error(fmt.Sprintf(f, a...)) }
