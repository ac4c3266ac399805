package translate

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
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

// routeTracing renders a route's tracing-flex override as the route's own
// tracing (sampling percentages and custom tags, which Envoy merges over
// the connection manager's, a route tag replacing one of the same name)
// and decorator (the span name). Without exporting global tracing there
// is nothing to override, as in Flex.
func (t *translator) routeTracing(r *ir.Route) (*routev3.Tracing, *routev3.Decorator, error) {
	o := r.Tracing
	if o == nil || t.snap.Tracing == nil || !tracingEnabled(t.snap.Tracing) {
		return nil, nil, nil
	}
	out := &routev3.Tracing{
		ClientSampling:  fractional(o.Sampling.Client),
		RandomSampling:  fractional(o.Sampling.Random),
		OverallSampling: fractional(o.Sampling.Overall),
	}
	tags, err := customTags(o.Labels)
	if err != nil {
		return nil, nil, err
	}
	out.CustomTags = tags
	var dec *routev3.Decorator
	if o.SpanName != "" {
		dec = &routev3.Decorator{Operation: o.SpanName}
	}
	return out, dec, nil
}

// fractional is a percentage (0-100, fractions kept to a millionth) as
// the FractionalPercent route tracing takes.
func fractional(pct float64) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: uint32(math.Round(pct * 10000)), Denominator: typev3.FractionalPercent_MILLION}
}

// customTags renders Flex's tracing labels as Envoy custom tags.
func customTags(labels []ir.TracingLabel) ([]*tracingtypev3.CustomTag, error) {
	var out []*tracingtypev3.CustomTag
	for i, l := range labels {
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
		out = append(out, tag)
	}
	return out, nil
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
	if out.CustomTags, err = customTags(t.Labels); err != nil {
		return nil, err
	}
	return out, nil
}
