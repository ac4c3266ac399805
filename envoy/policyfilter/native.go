package policyfilter

import (
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy/native"
)

// Flex's native-ext-authz-flex and native-ext-proc-flex are Envoy's own
// ext_authz and ext_proc filters pointed at the user's service: Envoy
// calls it directly, as the built-in data plane (policy/native) does.
func init() {
	Register("native-ext-authz-flex", nativeExtAuthz)
	Register("native-ext-proc-flex", nativeExtProc)
}

// serviceCluster is the cluster of one external service, named by its
// address so bindings naming the same service share it.
func serviceCluster(host string, port uint32, h2, tlsOn bool) (*clusterv3.Cluster, error) {
	kind := "http"
	if h2 {
		kind = "h2"
	}
	if tlsOn {
		kind += "s"
	}
	name := "flexgw_svc_" + kind + "_" + statSafe(host) + "_" + strconv.Itoa(int(port))
	return hostCluster(name, host, port, h2, tlsOn)
}

// headerMatchers lists exact, case-insensitive header names.
func headerMatchers(names []string) *matcherv3.ListStringMatcher {
	if names == nil {
		return nil
	}
	out := &matcherv3.ListStringMatcher{Patterns: []*matcherv3.StringMatcher{}}
	for _, n := range names {
		out.Patterns = append(out.Patterns, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: n}, IgnoreCase: true})
	}
	return out
}

func nativeExtAuthz(_ Env, p *ir.Policy) ([]Filter, error) {
	s, err := native.ExtAuthzSpecOf(p)
	if err != nil {
		return nil, err
	}
	cl, err := serviceCluster(s.Host, s.Port, s.GRPC, s.TLS)
	if err != nil {
		return nil, err
	}
	cfg := &extauthzv3.ExtAuthz{
		TransportApiVersion: corev3.ApiVersion_V3,
		// Flex: an unreachable service denies (403, Envoy's default).
		FailureModeAllow:       false,
		StatusOnError:          &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden},
		IncludePeerCertificate: s.IncludePeerCert,
		AllowedHeaders:         headerMatchers(s.AllowedHeaders),
		StatPrefix:             statSafe(p.Name),
	}
	if s.GRPC {
		cfg.Services = &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cl.Name}},
			Timeout:         durationpb.New(s.Timeout),
		}}
	} else {
		var add []*corev3.HeaderValue
		for _, kv := range s.RequestHeadersToAdd {
			add = append(add, &corev3.HeaderValue{Key: strings.ToLower(kv[0]), Value: kv[1]})
		}
		scheme := "http://"
		if s.TLS {
			scheme = "https://"
		}
		cfg.Services = &extauthzv3.ExtAuthz_HttpService{HttpService: &extauthzv3.HttpService{
			ServerUri: &corev3.HttpUri{
				Uri:              scheme + s.Host + ":" + strconv.Itoa(int(s.Port)) + s.PathPrefix,
				HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: cl.Name},
				Timeout:          durationpb.New(s.Timeout),
			},
			PathPrefix:           s.PathPrefix,
			AuthorizationRequest: &extauthzv3.AuthorizationRequest{HeadersToAdd: add},
			AuthorizationResponse: &extauthzv3.AuthorizationResponse{
				AllowedUpstreamHeaders:         headerMatchers(s.UpstreamHeaders),
				AllowedUpstreamHeadersToAppend: headerMatchers(s.UpstreamHeadersToAppend),
				AllowedClientHeaders:           headerMatchers(s.ClientHeaders),
				AllowedClientHeadersOnSuccess:  headerMatchers(s.ClientHeadersOnSuccess),
			},
		}}
		if cfg.AllowedHeaders == nil {
			// Flex: an HTTP service gets no client header by default
			// (Envoy still adds Host, Method, Path, Content-Length and
			// Authorization to any list).
			cfg.AllowedHeaders = &matcherv3.ListStringMatcher{Patterns: []*matcherv3.StringMatcher{
				{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "authorization"}, IgnoreCase: true},
			}}
		}
	}
	return []Filter{{Name: FilterName(p), Config: cfg, Clusters: []*clusterv3.Cluster{cl}}}, nil
}

func headerSendMode(s string) extprocv3.ProcessingMode_HeaderSendMode {
	if s == "skip" {
		return extprocv3.ProcessingMode_SKIP
	}
	return extprocv3.ProcessingMode_SEND
}

func bodySendMode(s string) extprocv3.ProcessingMode_BodySendMode {
	switch s {
	case "streamed":
		return extprocv3.ProcessingMode_STREAMED
	case "buffered":
		return extprocv3.ProcessingMode_BUFFERED
	case "bufferedPartial":
		return extprocv3.ProcessingMode_BUFFERED_PARTIAL
	}
	return extprocv3.ProcessingMode_NONE
}

func nativeExtProc(_ Env, p *ir.Policy) ([]Filter, error) {
	s, err := native.ExtProcSpecOf(p)
	if err != nil {
		return nil, err
	}
	cl, err := serviceCluster(s.Host, s.Port, true, s.TLS)
	if err != nil {
		return nil, err
	}
	cfg := &extprocv3.ExternalProcessor{
		GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cl.Name}},
		},
		FailureModeAllow: s.FailureModeAllow,
		ProcessingMode: &extprocv3.ProcessingMode{
			RequestHeaderMode: headerSendMode(s.RequestHeaderMode), ResponseHeaderMode: headerSendMode(s.ResponseHeaderMode),
			RequestTrailerMode: headerSendMode(s.RequestTrailerMode), ResponseTrailerMode: headerSendMode(s.ResponseTrailerMode),
			RequestBodyMode: bodySendMode(s.RequestBodyMode), ResponseBodyMode: bodySendMode(s.ResponseBodyMode),
		},
		MessageTimeout:    durationpb.New(s.MessageTimeout),
		AllowModeOverride: s.AllowModeOverride,
		StatPrefix:        statSafe(p.Name),
	}
	if s.MaxMessageTimeout > 0 {
		cfg.MaxMessageTimeout = durationpb.New(s.MaxMessageTimeout)
	}
	return []Filter{{Name: FilterName(p), Config: cfg, Clusters: []*clusterv3.Cluster{cl}}}, nil
}
