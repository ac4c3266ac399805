// Package envoy is flexgw's Envoy data plane: the bootstrap that points an
// Envoy at the agent's ADS server, and detection of an envoy binary.
// Translation lives in envoy/translate, the ADS server in envoy/xds, the
// process supervisor in envoy/supervisor and the stats mapping in
// envoy/stats.
package envoy

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	overloadv3 "github.com/envoyproxy/go-control-plane/envoy/config/overload/v3"
	downstreamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	fixedheapv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/fixed_heap/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/flexgw/flexgw/envoy/internal/protoyaml"
	"github.com/flexgw/flexgw/envoy/translate"
)

// Bootstrap defaults.
const (
	DefaultAdminAddress             = "127.0.0.1:9901"
	DefaultCluster                  = "flexgw"
	DefaultXDSAddress               = "127.0.0.1:18000"
	DefaultMaxHeapBytes             = 1 << 30
	DefaultMaxDownstreamConnections = 50000
	// XDSClusterName is the static cluster that reaches the agent's ADS.
	XDSClusterName = "flexgw_xds"
)

// RouteTagName is the stats tag that carries a route's stat_prefix; the
// stats mapper reads it as the flexgw_route label of Envoy's Prometheus
// output.
const RouteTagName = "flexgw_route"

// BootstrapOptions configure the bootstrap. Zero values take the defaults.
type BootstrapOptions struct {
	// NodeID identifies this Envoy to the agent; default: the hostname.
	NodeID string
	// Cluster is the node's cluster (service-cluster); default "flexgw".
	Cluster string
	// XDSAddress is the agent's ADS address: host:port, or a unix socket
	// path ("/run/flexgw/xds.sock", "unix:///run/flexgw/xds.sock").
	XDSAddress string
	// AdminAddress is Envoy's admin listener (host:port), loopback only by
	// default: it can stop the proxy.
	AdminAddress string
	// MaxHeapBytes is the overload manager's heap budget: Envoy shrinks its
	// heap at 95% and stops accepting requests at 98%.
	MaxHeapBytes uint64
	// MaxDownstreamConnections caps open downstream connections.
	MaxDownstreamConnections uint64
}

func (o *BootstrapOptions) defaults() error {
	if o.NodeID == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node id: %w", err)
		}
		o.NodeID = h
	}
	if o.Cluster == "" {
		o.Cluster = DefaultCluster
	}
	if o.XDSAddress == "" {
		o.XDSAddress = DefaultXDSAddress
	}
	if o.AdminAddress == "" {
		o.AdminAddress = DefaultAdminAddress
	}
	if o.MaxHeapBytes == 0 {
		o.MaxHeapBytes = DefaultMaxHeapBytes
	}
	if o.MaxDownstreamConnections == 0 {
		o.MaxDownstreamConnections = DefaultMaxDownstreamConnections
	}
	return nil
}

// Bootstrap returns the Envoy bootstrap (YAML) that points Envoy at the
// agent's ADS server: node, admin, the ADS cluster, LDS/CDS over ADS,
// overload manager limits and the stats tag flexgw's stats mapper uses.
func Bootstrap(opts BootstrapOptions) ([]byte, error) {
	b, err := BootstrapProto(opts)
	if err != nil {
		return nil, err
	}
	return protoyaml.Marshal(b)
}

// BootstrapProto is Bootstrap before rendering, for callers that embed it.
func BootstrapProto(opts BootstrapOptions) (*bootstrapv3.Bootstrap, error) {
	if err := opts.defaults(); err != nil {
		return nil, fmt.Errorf("envoy bootstrap: %w", err)
	}
	admin, err := socketAddress(opts.AdminAddress)
	if err != nil {
		return nil, fmt.Errorf("envoy bootstrap: admin address %q: %w", opts.AdminAddress, err)
	}
	xdsCluster, err := adsCluster(opts.XDSAddress)
	if err != nil {
		return nil, fmt.Errorf("envoy bootstrap: xds address %q: %w", opts.XDSAddress, err)
	}
	heap, err := anypb.New(&fixedheapv3.FixedHeapConfig{MaxHeapSizeBytes: opts.MaxHeapBytes})
	if err != nil {
		return nil, err
	}
	conns, err := anypb.New(&downstreamv3.DownstreamConnectionsConfig{MaxActiveDownstreamConnections: int64(opts.MaxDownstreamConnections)})
	if err != nil {
		return nil, err
	}
	const heapMonitor = "envoy.resource_monitors.fixed_heap"
	threshold := func(v float64) []*overloadv3.Trigger {
		return []*overloadv3.Trigger{{Name: heapMonitor, TriggerOneof: &overloadv3.Trigger_Threshold{Threshold: &overloadv3.ThresholdTrigger{Value: v}}}}
	}
	ads := &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
	b := &bootstrapv3.Bootstrap{
		Node: &corev3.Node{Id: opts.NodeID, Cluster: opts.Cluster},
		Admin: &bootstrapv3.Admin{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: admin}},
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{xdsCluster}},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:                   corev3.ApiConfigSource_GRPC,
				TransportApiVersion:       corev3.ApiVersion_V3,
				SetNodeOnFirstMessageOnly: true,
				GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: XDSClusterName},
				}}},
			},
			LdsConfig: ads,
			CdsConfig: ads,
		},
		StatsConfig: &metricsv3.StatsConfig{StatsTags: []*metricsv3.TagSpecifier{{
			TagName: RouteTagName,
			// vhost.<vhost>.route.<fgw_...>.upstream_rq_2xx → tag flexgw_route.
			TagValue: &metricsv3.TagSpecifier_Regex{Regex: `^vhost\.[^.]+\.route\.((` + translate.RouteStatPrefixMarker + `[^.]+)\.)`},
		}}},
		OverloadManager: &overloadv3.OverloadManager{
			RefreshInterval: durationpb.New(250 * time.Millisecond),
			ResourceMonitors: []*overloadv3.ResourceMonitor{
				{Name: heapMonitor, ConfigType: &overloadv3.ResourceMonitor_TypedConfig{TypedConfig: heap}},
				{Name: "envoy.resource_monitors.global_downstream_max_connections", ConfigType: &overloadv3.ResourceMonitor_TypedConfig{TypedConfig: conns}},
			},
			Actions: []*overloadv3.OverloadAction{
				{Name: "envoy.overload_actions.shrink_heap", Triggers: threshold(0.95)},
				{Name: "envoy.overload_actions.stop_accepting_requests", Triggers: threshold(0.98)},
			},
		},
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("envoy bootstrap: %w", err)
	}
	return b, nil
}

// adsCluster is the static HTTP/2 cluster to the agent.
func adsCluster(addr string) (*clusterv3.Cluster, error) {
	h2, err := anypb.New(&upstreamhttpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
				},
			},
		},
	})
	if err != nil {
		return nil, err
	}
	c := &clusterv3.Cluster{
		Name:                          XDSClusterName,
		ConnectTimeout:                durationpb.New(time.Second),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": h2},
	}
	var address *corev3.Address
	if path, ok := unixPath(addr); ok {
		address = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: path}}}
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	} else {
		sa, err := socketAddress(addr)
		if err != nil {
			return nil, err
		}
		address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: sa}}
		// Keepalive notices an agent that vanished without closing the
		// connection, so Envoy reconnects instead of waiting forever.
		c.UpstreamConnectionOptions = &clusterv3.UpstreamConnectionOptions{TcpKeepalive: &corev3.TcpKeepalive{}}
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
		if net.ParseIP(sa.Address) == nil {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
		}
	}
	c.LoadAssignment = &endpointv3.ClusterLoadAssignment{
		ClusterName: XDSClusterName,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: address}},
		}}}},
	}
	return c, nil
}

func socketAddress(addr string) (*corev3.SocketAddress, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return nil, errors.New("port must be a number from 0 to 65535")
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return &corev3.SocketAddress{Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}, nil
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
