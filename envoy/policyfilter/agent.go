package policyfilter

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

// AgentClusterName is the Envoy cluster of the agent's gRPC policy
// services (RateLimitService and ext_authz).
const AgentClusterName = "flexgw_policy_engine"

// DefaultAgentGRPC is where the policy services listen unless Env.AgentGRPC
// says otherwise: the agent registers them on its xDS gRPC server.
const DefaultAgentGRPC = "127.0.0.1:18000"

// FilterName is the listener-unique Envoy filter name of a binding.
func FilterName(p *ir.Policy, suffix ...string) string {
	n := "flexgw." + p.Name + "." + p.Binding
	for _, s := range suffix {
		n += "." + s
	}
	return n
}

// AgentCluster is the HTTP/2 cluster reaching the agent's policy services.
func AgentCluster(env Env) (*clusterv3.Cluster, error) {
	addr := env.AgentGRPC
	if addr == "" {
		addr = DefaultAgentGRPC
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("agent gRPC address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return nil, fmt.Errorf("agent gRPC address %q: bad port", addr)
	}
	return hostCluster(AgentClusterName, host, uint32(port), true, false)
}

// hostCluster is a STRICT_DNS (or STATIC for IP literals) cluster to one host.
func hostCluster(name, host string, port uint32, h2, tlsOn bool) (*clusterv3.Cluster, error) {
	typ := clusterv3.Cluster_STRICT_DNS
	if net.ParseIP(host) != nil {
		typ = clusterv3.Cluster_STATIC
	}
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: typ},
		ConnectTimeout:       durationpb.New(2 * time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
					}}},
				}},
			}}}},
		},
	}
	if h2 {
		opts, err := anypb.New(&httpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
			}},
		})
		if err != nil {
			return nil, err
		}
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": opts}
	}
	if tlsOn {
		ts, err := upstreamTLSSocket(host)
		if err != nil {
			return nil, err
		}
		c.TransportSocket = ts
	}
	return c, nil
}

// ExtAuthz renders a policy Envoy has no native filter for: Envoy
// asks the agent's policy engine (the same Go middleware the built-in data
// plane runs) through ext_authz, naming the binding in the check context.
func ExtAuthz(env Env, p *ir.Policy) ([]Filter, error) {
	if err := validate(p); err != nil {
		return nil, err
	}
	cl, err := AgentCluster(env)
	if err != nil {
		return nil, err
	}
	api := ""
	if env.API != nil {
		api = env.API.Key()
	}
	return []Filter{{
		Name: FilterName(p),
		Config: &extauthzv3.ExtAuthz{
			Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
				TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: AgentClusterName}},
				Timeout:         durationpb.New(2 * time.Second),
			}},
			TransportApiVersion: corev3.ApiVersion_V3,
			// The agent unreachable means the policy cannot be enforced: fail closed.
			FailureModeAllow: false,
			StatusOnError:    &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
			StatPrefix:       statSafe(p.Name),
		},
		PerRoute: &extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_CheckSettings{CheckSettings: &extauthzv3.CheckSettings{
			ContextExtensions: map[string]string{policy.ExtAuthzKeyAPI: api, policy.ExtAuthzKeyPolicy: p.Name, policy.ExtAuthzKeyBinding: p.Binding},
		}}},
		Clusters: []*clusterv3.Cluster{cl},
	}}, nil
}

func statSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

func percent100() *corev3.RuntimeFractionalPercent {
	return &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}}
}

// SystemCABundle is the trust store Envoy validates JWKS hosts against
// (Debian's ca-certificates path).
const SystemCABundle = "/etc/ssl/certs/ca-certificates.crt"

func upstreamTLSSocket(sni string) (*corev3.TransportSocket, error) {
	ctx, err := anypb.New(&tlsv3.UpstreamTlsContext{
		Sni: sni,
		CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: SystemCABundle}},
			}},
		},
	})
	if err != nil {
		return nil, err
	}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: ctx}}, nil
}

// ExtAuthzBody is ExtAuthz with the request body sent to the agent: Envoy
// buffers up to policy.MaxInspectedBody and answers 413 beyond it.
func ExtAuthzBody(env Env, p *ir.Policy) ([]Filter, error) {
	fs, err := ExtAuthz(env, p)
	if err != nil {
		return nil, err
	}
	cfg := fs[0].Config.(*extauthzv3.ExtAuthz)
	cfg.WithRequestBody = &extauthzv3.BufferSettings{MaxRequestBytes: policy.MaxInspectedBody, PackAsBytes: true}
	return fs, nil
}

// apiName is the key of the binding's API ("" for none).
func apiName(env Env) string {
	if env.API != nil {
		return env.API.Key()
	}
	return ""
}

// validate checks p's configuration with its definition, as the renderings
// that read a Spec do through it.
func validate(p *ir.Policy) error {
	d, ok := policy.Lookup(p.Name)
	if !ok {
		return fmt.Errorf("policy %q is not registered", p.Name)
	}
	return d.Validate(p.Config)
}

// AgentExtProc renders a policy that acts on the response as well as the
// request (an outbound header computed by an expression, a cache): Envoy
// streams the request headers, the response headers and, with
// responseBody, the response body (up to its buffer limit) to the agent's
// ext_proc service, which runs the binding's built-in middleware across
// them (policy/extauthz).
func AgentExtProc(env Env, p *ir.Policy, responseBody bool) ([]Filter, error) {
	if err := validate(p); err != nil {
		return nil, err
	}
	cl, err := AgentCluster(env)
	if err != nil {
		return nil, err
	}
	bodyMode := extprocv3.ProcessingMode_NONE
	if responseBody {
		// Up to the buffer limit in one message; a longer body streams on
		// to the client unprocessed and the agent is told it is partial.
		bodyMode = extprocv3.ProcessingMode_BUFFERED_PARTIAL
	}
	meta := func(k, v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: k, Value: v} }
	return []Filter{{
		Name: FilterName(p),
		Config: &extprocv3.ExternalProcessor{
			GrpcService: &corev3.GrpcService{
				TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: AgentClusterName}},
			},
			// The agent unreachable means the policy cannot be enforced: fail closed.
			FailureModeAllow: false,
			ProcessingMode: &extprocv3.ProcessingMode{
				RequestHeaderMode: extprocv3.ProcessingMode_SEND, ResponseHeaderMode: extprocv3.ProcessingMode_SEND,
				RequestTrailerMode: extprocv3.ProcessingMode_SKIP, ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
				RequestBodyMode: extprocv3.ProcessingMode_NONE, ResponseBodyMode: bodyMode,
			},
			// The client address, for expressions and decisions that read it.
			RequestAttributes: []string{"source.address"},
			MessageTimeout:    durationpb.New(2 * time.Second),
			StatPrefix:        statSafe(p.Name),
			StatusOnError:     &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
		},
		PerRoute: &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Overrides{Overrides: &extprocv3.ExtProcOverrides{
			GrpcInitialMetadata: []*corev3.HeaderValue{
				meta(policy.ExtProcMetaAPI, apiName(env)), meta(policy.ExtProcMetaPolicy, p.Name), meta(policy.ExtProcMetaBinding, p.Binding),
			},
		}}},
		Clusters: []*clusterv3.Cluster{cl},
	}}, nil
}
