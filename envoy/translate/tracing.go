package translate

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	tracingtypev3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/flexgw/flexgw/ir"
)

// tracingEnabled: a provider that exports renders for Envoy (OTLP over
// gRPC to the collector named by provider.properties.address); anypoint
// without an address has nowhere to send spans in Local Mode.
func tracingEnabled(t *ir.Tracing) bool {
	return t.Exports()
}

// otlpAddress reads provider.properties.address: host:port or a URL.
func otlpAddress(t *ir.Tracing) (string, int, error) {
	addr := t.Provider.Properties["address"]
	if addr == "" {
		return "", 0, fmt.Errorf("provider.properties.address: required for opentelemetry")
	}
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("provider.properties.address %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, fmt.Errorf("provider.properties.address %q: bad port", addr)
	}
	return host, p, nil
}

func makeOTLPCluster(t *ir.Tracing, name string) (*clusterv3.Cluster, error) {
	host, port, err := otlpAddress(t)
	if err != nil {
		return nil, err
	}
	h2, err := toAny(&upstreamhttpv3.HttpProtocolOptions{
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
	return &clusterv3.Cluster{
		Name:                          name,
		ConnectTimeout:                durationpb.New(5 * time.Second),
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
		LoadAssignment:                loadAssignment(name, []ir.Endpoint{{Host: host, Port: port}}),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{httpProtocolOptionsKey: h2},
	}, nil
}

// hcmTracing renders Flex's sampling percentages and labels as the HTTP
// connection manager's OpenTelemetry tracing.
func hcmTracing(t *ir.Tracing, cluster string) (*hcmv3.HttpConnectionManager_Tracing, error) {
	svcName := t.Provider.Properties["serviceName"]
	if svcName == "" {
		svcName = "flexgw"
	}
	cfg, err := toAny(&tracev3.OpenTelemetryConfig{
		GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster},
		}},
		ServiceName: svcName,
	})
	if err != nil {
		return nil, err
	}
	out := &hcmv3.HttpConnectionManager_Tracing{
		ClientSampling:  &typev3.Percent{Value: t.Sampling.Client},
		RandomSampling:  &typev3.Percent{Value: t.Sampling.Random},
		OverallSampling: &typev3.Percent{Value: t.Sampling.Overall},
		Provider: &tracev3.Tracing_Http{
			Name:       "envoy.tracers.opentelemetry",
			ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: cfg},
		},
	}
	for i, l := range t.Labels {
		tag := &tracingtypev3.CustomTag{Tag: l.Name}
		switch l.Type {
		case "literal":
			tag.Type = &tracingtypev3.CustomTag_Literal_{Literal: &tracingtypev3.CustomTag_Literal{Value: l.Value}}
		case "environment":
			tag.Type = &tracingtypev3.CustomTag_Environment_{Environment: &tracingtypev3.CustomTag_Environment{Name: l.Key, DefaultValue: l.DefaultValue}}
		case "requestHeader":
			tag.Type = &tracingtypev3.CustomTag_RequestHeader{RequestHeader: &tracingtypev3.CustomTag_Header{Name: l.Key, DefaultValue: l.DefaultValue}}
		default:
			return nil, fmt.Errorf("labels[%d].type %q: unknown (literal, environment, requestHeader)", i, l.Type)
		}
		out.CustomTags = append(out.CustomTags, tag)
	}
	return out, nil
}
