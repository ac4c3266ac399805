package translate

import (
	"fmt"
	"google.golang.org/protobuf/types/known/durationpb"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flexgw/flexgw/ir"
)

// listener renders one ir.Listener: an Envoy listener whose HTTP connection
// manager fetches its route configuration over ADS, plus that route
// configuration and (https) the SDS secrets.
func (t *translator) listener(l *ir.Listener, services map[string]*ir.Service) error {
	rc, chain, err := t.routeConfig(l, services)
	if err != nil {
		return err
	}
	t.res.Envoy.Routes = append(t.res.Envoy.Routes, rc)

	statPrefix := statName(l.Name)
	t.res.ListenerStats[statPrefix] = l.Name
	al, err := accessLog(t.opts)
	if err != nil {
		return fmt.Errorf("listener %q: access log: %w", l.Name, err)
	}
	mgr := &hcmv3.HttpConnectionManager{
		StatPrefix: statPrefix,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    t.in.ads,
			RouteConfigName: rc.Name,
		}},
		HttpFilters: chain,
		AccessLog:   []*accesslogv3.AccessLog{al},
		// The gateway is the edge: append the peer to X-Forwarded-For and
		// trust nothing the client sent about itself.
		UseRemoteAddress: wrapperspb.Bool(true),
		// The request normalisation both data planes apply (ir/normalize.go):
		// escaped slashes first, then RFC 3986 normalisation, then merged
		// slashes; routes, filters and the upstream see the result.
		NormalizePath:                wrapperspb.Bool(true),
		MergeSlashes:                 true,
		PathWithEscapedSlashesAction: escapedSlashesAction(t.opts.EscapedSlashes),
		// WebSocket is the one upgrade forwarded, as on the built-in data
		// plane (dataplane/request.go stripHopByHop).
		UpgradeConfigs: websocketOnly,
	}
	// Configuration spec.timeouts.streamIdleSeconds; unset keeps Envoy's
	// 5 minutes, which is Flex's default too.
	if l.StreamIdleTimeout > 0 {
		mgr.StreamIdleTimeout = durationpb.New(l.StreamIdleTimeout)
	}
	if tr := t.snap.Tracing; tr != nil && tracingEnabled(tr) {
		mgr.Tracing, err = hcmTracing(tr, t.opts.OTLPCluster)
		if err != nil {
			return fmt.Errorf("listener %q: tracing: %w", l.Name, err)
		}
	}
	mgrAny, err := toAny(mgr)
	if err != nil {
		return fmt.Errorf("listener %q: http connection manager: %w", l.Name, err)
	}
	fc := &listenerv3.FilterChain{
		Filters: []*listenerv3.Filter{{
			Name:       wellknown.HTTPConnectionManager,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mgrAny},
		}},
	}
	if l.Protocol == ir.HTTPS {
		if l.TLS == nil {
			return fmt.Errorf("listener %q: https listener without TLS (a tls policy is required)", l.Name)
		}
		ts, secrets, err := downstreamTLS(l)
		if err != nil {
			return fmt.Errorf("listener %q: tls: %w", l.Name, err)
		}
		fc.TransportSocket = ts
		t.res.Envoy.Secrets = append(t.res.Envoy.Secrets, secrets...)
	}
	host := l.Host
	if host == "" {
		host = "0.0.0.0"
	}
	t.res.Envoy.Listeners = append(t.res.Envoy.Listeners, &listenerv3.Listener{
		Name: l.Name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Protocol:      corev3.SocketAddress_TCP,
			Address:       host,
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(l.Port)},
		}}},
		FilterChains: []*listenerv3.FilterChain{fc},
	})
	return nil
}

// escapedSlashesAction maps the shared setting to Envoy's enum.
func escapedSlashesAction(es ir.EscapedSlashes) hcmv3.HttpConnectionManager_PathWithEscapedSlashesAction {
	switch es {
	case ir.EscapedSlashesUnescapeRedirect:
		return hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT
	case ir.EscapedSlashesUnescapeForward:
		return hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD
	case ir.EscapedSlashesKeep:
		return hcmv3.HttpConnectionManager_KEEP_UNCHANGED
	}
	return hcmv3.HttpConnectionManager_REJECT_REQUEST
}

var websocketOnly = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}}
