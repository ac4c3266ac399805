package translate

import (
	"fmt"
	"net"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flexgw/flexgw/ir"
)

// DefaultConnectTimeout applies when a service sets none.
const DefaultConnectTimeout = 5 * time.Second

const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// makeCluster renders a service. Endpoints that are all IP addresses make an
// EDS cluster whose ClusterLoadAssignment is returned alongside (the
// endpoints change without touching the cluster); any hostname makes a
// STRICT_DNS cluster with its endpoints inline, since Envoy resolves those.
//
// grpc renders the variant proxyless gRPC clients accept: EDS or
// LOGICAL_DNS (gRPC supports no STRICT_DNS/STATIC), no active health checks
// (ignored), no outlier detection and no transport socket (gRPC only takes
// certificate-provider TLS, which flexgw does not configure).
//
// The ClusterLoadAssignment of an EDS cluster is the same for Envoy and
// gRPC clients and is built once per service.
func (t *translator) makeCluster(svc *ir.Service, grpc bool) (*clusterv3.Cluster, *endpointv3.ClusterLoadAssignment, error) {
	if len(svc.Endpoints) == 0 {
		return nil, nil, fmt.Errorf("no endpoints")
	}
	name := ClusterName(svc.Key())
	ct := svc.ConnectTimeout
	if ct <= 0 {
		ct = DefaultConnectTimeout
	}
	c := &clusterv3.Cluster{
		Name:           name,
		ConnectTimeout: durationpb.New(ct),
	}
	switch svc.LB {
	case ir.LeastRequest:
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	case ir.RoundRobin, "":
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	default:
		return nil, nil, fmt.Errorf("lb %q: unsupported (round-robin or least-request)", svc.LB)
	}
	var eds *endpointv3.ClusterLoadAssignment
	switch {
	case allIPs(svc.Endpoints):
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
		c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: t.in.ads}
		if eds = t.loadAssignments[svc]; eds == nil {
			eds = loadAssignment(name, svc.Endpoints)
			if t.in.grpc {
				t.loadAssignments[svc] = eds
			}
		}
	case grpc:
		// gRPC resolves one DNS name per LOGICAL_DNS cluster.
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
		c.LoadAssignment = loadAssignment(name, svc.Endpoints[:1])
	default:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		c.LoadAssignment = loadAssignment(name, svc.Endpoints)
	}
	if grpc {
		return c, eds, nil
	}
	if hc := svc.HealthCheck; hc != nil {
		c.HealthChecks = []*corev3.HealthCheck{healthCheck(hc)}
	}
	if od := svc.Outlier; od != nil {
		c.OutlierDetection = outlierDetection(od)
	}
	if cb := svc.CircuitBreaker; cb != nil {
		c.CircuitBreakers = circuitBreakers(cb)
	}
	upFilters, err := t.upstreamHTTPFilters(svc)
	if err != nil {
		return nil, nil, err
	}
	if svc.HTTP2 || svc.IdleTimeout > 0 || len(upFilters) > 0 {
		po := &upstreamhttpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
				ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
						HttpProtocolOptions: &corev3.Http1ProtocolOptions{},
					},
				},
			},
		}
		if svc.HTTP2 {
			po.UpstreamProtocolOptions = &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
				ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
						Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
					},
				},
			}
		}
		// Policies that run on the request as it leaves (a signature).
		po.HttpFilters = upFilters
		// Configuration spec.timeouts.upstreamConnectionIdleSeconds.
		if svc.IdleTimeout > 0 {
			po.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(svc.IdleTimeout)}
		}
		opts, err := toAny(po)
		if err != nil {
			return nil, nil, fmt.Errorf("http protocol options: %w", err)
		}
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsKey: opts}
	}
	if svc.Protocol == ir.HTTPS || svc.TLS != nil {
		ts, err := upstreamTLS(svc)
		if err != nil {
			return nil, nil, fmt.Errorf("tls: %w", err)
		}
		c.TransportSocket = ts
	}
	return c, eds, nil
}

func allIPs(eps []ir.Endpoint) bool {
	for _, e := range eps {
		if net.ParseIP(e.Host) == nil {
			return false
		}
	}
	return true
}

func loadAssignment(cluster string, eps []ir.Endpoint) *endpointv3.ClusterLoadAssignment {
	lbs := make([]*endpointv3.LbEndpoint, 0, len(eps))
	for _, e := range eps {
		lbs = append(lbs, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Protocol:      corev3.SocketAddress_TCP,
					Address:       e.Host,
					PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(e.Port)},
				}}},
			}},
		})
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: cluster,
		// gRPC clients reject a locality without an ID and skip one without
		// a weight; Envoy ignores both unless locality-aware balancing is on.
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			Locality:            &corev3.Locality{Region: "flexgw"},
			LbEndpoints:         lbs,
			LoadBalancingWeight: wrapperspb.UInt32(1),
		}},
	}
}

func healthCheck(hc *ir.HealthCheck) *corev3.HealthCheck {
	h := &corev3.HealthCheck{
		Timeout:            durationpb.New(orDefault(hc.Timeout, time.Second)),
		Interval:           durationpb.New(orDefault(hc.Interval, 10*time.Second)),
		HealthyThreshold:   wrapperspb.UInt32(uint32(max(hc.HealthyThreshold, 1))),
		UnhealthyThreshold: wrapperspb.UInt32(uint32(max(hc.UnhealthyThreshold, 1))),
	}
	http := &corev3.HealthCheck_HttpHealthCheck{Path: hc.Path}
	if http.Path == "" {
		http.Path = "/"
	}
	if len(hc.ExpectedStatuses) == 0 {
		// flexgw's default is 200-399; Envoy's is 200 only.
		http.ExpectedStatuses = []*typev3.Int64Range{{Start: 200, End: 400}}
	}
	for _, code := range hc.ExpectedStatuses {
		http.ExpectedStatuses = append(http.ExpectedStatuses, &typev3.Int64Range{Start: int64(code), End: int64(code) + 1})
	}
	h.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: http}
	return h
}

// outlierDetection ejects on consecutive gateway failures (connect errors,
// 502/503/504), flexgw's definition; Envoy's consecutive-5xx detector is
// switched off so an application 500 does not eject an endpoint.
func outlierDetection(od *ir.OutlierDetection) *clusterv3.OutlierDetection {
	o := &clusterv3.OutlierDetection{
		ConsecutiveGatewayFailure:          wrapperspb.UInt32(uint32(max(od.ConsecutiveFailures, 1))),
		EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100),
		EnforcingConsecutive_5Xx:           wrapperspb.UInt32(0),
		EnforcingSuccessRate:               wrapperspb.UInt32(0),
		BaseEjectionTime:                   durationpb.New(orDefault(od.BaseEjectionTime, 30*time.Second)),
	}
	if od.MaxEjectionPercent > 0 {
		o.MaxEjectionPercent = wrapperspb.UInt32(uint32(min(od.MaxEjectionPercent, 100)))
	}
	return o
}

func circuitBreakers(cb *ir.CircuitBreaker) *clusterv3.CircuitBreakers {
	th := &clusterv3.CircuitBreakers_Thresholds{Priority: corev3.RoutingPriority_DEFAULT}
	set := func(v int) *wrapperspb.UInt32Value {
		if v <= 0 {
			return nil
		}
		return wrapperspb.UInt32(uint32(v))
	}
	th.MaxConnections = set(cb.MaxConnections)
	th.MaxPendingRequests = set(cb.MaxPendingRequests)
	th.MaxRequests = set(cb.MaxRequests)
	th.MaxRetries = set(cb.MaxRetries)
	th.MaxConnectionPools = set(cb.MaxConnectionPools)
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
