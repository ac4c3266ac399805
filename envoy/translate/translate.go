// Package translate turns an ir.Snapshot into Envoy xDS resources (go-control-plane
// envoy v3 types). It is a pure function of its input: no I/O, no clock, no
// globals, so the golden tests pin its output byte for byte.
//
// One file per Envoy feature: listener.go (LDS), route.go (RDS), cluster.go
// (CDS), endpoint.go (EDS), secret.go (SDS), accesslog.go, filters.go (policy
// filters and their order), tracing.go and grpc.go (proxyless gRPC API listeners).
// intern.go builds the sub-messages many resources repeat once and shares
// them, which is most of what keeps a large translation's memory down.
package translate

import (
	"errors"
	"fmt"
	"sort"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/flexgw/flexgw/ir"
)

// Options carry what the translation needs beyond the snapshot.
type Options struct {
	// GatewayID is written as a literal into every access-log record.
	GatewayID string
	// AccessLogPath is the file Envoy appends JSON access-log lines to
	// (Fluent Bit tails it). Empty means /dev/stdout.
	AccessLogPath string
	// OTLPCluster names the cluster Envoy sends spans to when the snapshot
	// enables tracing; empty means "flexgw_otlp".
	OTLPCluster string
	// SkipGRPC leaves Result.GRPC empty: the ADS server skips the
	// proxyless resources (a third of the work) until a gRPC client shows up.
	SkipGRPC bool
	// EscapedSlashes is Envoy's path_with_escaped_slashes_action, the same
	// setting the built-in data plane takes (zero: reject with 400).
	EscapedSlashes ir.EscapedSlashes
}

// DefaultAccessLogPath is where Envoy writes access logs when Options
// names none.
const DefaultAccessLogPath = "/dev/stdout"

// Resources is one complete set of xDS resources, one slice per type.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	Secrets   []*tlsv3.Secret
}

// RouteStat identifies the config names behind one Envoy route stat prefix,
// so Envoy's per-route stats can be re-exposed under flexgw's labels.
type RouteStat struct {
	API   string
	Route string
	// Service is the route's destination when it has exactly one, else "".
	Service string
}

// Result is the translation of one snapshot. Its resources share
// sub-messages (intern.go): they are read-only once Translate returns.
type Result struct {
	// Envoy holds the resources for Envoy proxies.
	Envoy Resources
	// GRPC holds the resources for proxyless gRPC clients: one API listener
	// per ApiInstance (named after it), its route configuration and the
	// clusters and endpoints they reach.
	GRPC Resources
	// RouteStats maps each route stat_prefix to the names it stands for:
	// for reading Envoy's own per-route stats (the flexgw_* request
	// metrics come from the access log, not from these).
	RouteStats map[string]RouteStat
	// ListenerStats maps each HCM stat_prefix to the ir listener name.
	ListenerStats map[string]string
	// Warnings are non-fatal gaps (a policy with no Envoy rendering); the
	// caller logs them.
	Warnings []string
}

// Translate renders s. On error nothing is returned: the caller keeps the
// last good resources. The error names the resource at fault.
func Translate(s *ir.Snapshot, opts Options) (*Result, error) {
	if s == nil {
		return nil, errors.New("translate: nil snapshot")
	}
	if opts.AccessLogPath == "" {
		opts.AccessLogPath = DefaultAccessLogPath
	}
	if opts.OTLPCluster == "" {
		opts.OTLPCluster = "flexgw_otlp"
	}
	routes := 0
	for _, l := range s.Listeners {
		for _, a := range l.APIs {
			routes += len(a.Routes)
		}
	}
	t := &translator{snap: s, opts: opts, in: newInterned(!opts.SkipGRPC), regexCache: map[regexKey]regexInfo{},
		prefixes: make(map[string]string, routes), prefixTaken: make(map[string]bool, routes),
		routePrefix: make(map[*ir.Route]string, routes),
		svcFilters:  map[apiService][]enabledFilter{}, filterAny: map[enabledFilter]*anypb.Any{},
		apiPerFilter: map[*ir.API]map[string]*anypb.Any{}, policyClusters: map[string]bool{},
		loadAssignments: make(map[*ir.Service]*endpointv3.ClusterLoadAssignment, len(s.Services)),
		res: &Result{
			RouteStats:    make(map[string]RouteStat, routes),
			ListenerStats: make(map[string]string, len(s.Listeners)),
		}}
	if err := t.run(); err != nil {
		return nil, err
	}
	if err := t.res.Envoy.Validate(); err != nil {
		return nil, err
	}
	if err := t.res.GRPC.Validate(); err != nil {
		return nil, err
	}
	return t.res, nil
}

type translator struct {
	snap       *ir.Snapshot
	opts       Options
	res        *Result
	in         *interned
	regexCache map[regexKey]regexInfo
	// prefixes maps "api key\x00route" to its unique stat prefix;
	// routePrefix remembers it per route, sparing the key.
	prefixes    map[string]string
	prefixTaken map[string]bool
	routePrefix map[*ir.Route]string
	// svcFilters are the filters a service's bindings enable on the routes
	// of one API, rendered once per pair rather than once per route.
	svcFilters map[apiService][]enabledFilter
	// policyOwner maps a Service binding to its service (ownerService).
	policyOwner map[*ir.Policy]*ir.Service
	// filterAny is each enabled filter's FilterConfig, packed once.
	filterAny map[enabledFilter]*anypb.Any
	// apiPerFilter is the typed_per_filter_config of an API's routes that
	// enable only the API's own filters: one map for all of them.
	apiPerFilter map[*ir.API]map[string]*anypb.Any
	router       *hcmv3.HttpFilter
	// loadAssignments are the EDS services' endpoints, shared by the
	// Envoy and gRPC clusters.
	loadAssignments map[*ir.Service]*endpointv3.ClusterLoadAssignment
	// policyClusters names the clusters policies asked for (JWKS hosts,
	// the agent's policy services), added once each.
	policyClusters map[string]bool
}

type apiService struct {
	api *ir.API
	svc *ir.Service
}

func (t *translator) run() error {
	services := map[string]*ir.Service{}
	for _, svc := range t.snap.Services {
		services[svc.Key()] = svc
	}
	// Clusters first: routes refer to them by name and must not refer to
	// one that failed.
	for _, svc := range t.snap.Services {
		c, cla, err := t.makeCluster(svc, false)
		if err != nil {
			return fmt.Errorf("cluster %q (%s %s): %w", svc.Key(), svc.Source.Kind, svc.Source, err)
		}
		t.res.Envoy.Clusters = append(t.res.Envoy.Clusters, c)
		if cla != nil {
			t.res.Envoy.Endpoints = append(t.res.Envoy.Endpoints, cla)
		}
	}
	if tr := t.snap.Tracing; tr != nil && tracingEnabled(tr) {
		c, err := makeOTLPCluster(tr, t.opts.OTLPCluster)
		if err != nil {
			return fmt.Errorf("tracing (Configuration %s): %w", tr.Source, err)
		}
		t.res.Envoy.Clusters = append(t.res.Envoy.Clusters, c)
	}
	for _, l := range t.snap.Listeners {
		if err := t.listener(l, services); err != nil {
			return err
		}
	}
	if t.opts.SkipGRPC {
		return nil
	}
	return t.grpc(services)
}

// Validate runs every resource's generated ValidateAll and names the first
// resource that fails.
func (r *Resources) Validate() error {
	type validator interface{ ValidateAll() error }
	check := func(kind, name string, m validator) error {
		if err := m.ValidateAll(); err != nil {
			return fmt.Errorf("%s %q: invalid: %w", kind, name, err)
		}
		return nil
	}
	for _, x := range r.Listeners {
		if err := check("listener", x.GetName(), x); err != nil {
			return err
		}
	}
	for _, x := range r.Routes {
		if err := check("route configuration", x.GetName(), x); err != nil {
			return err
		}
	}
	for _, x := range r.Clusters {
		if err := check("cluster", x.GetName(), x); err != nil {
			return err
		}
	}
	for _, x := range r.Endpoints {
		if err := check("cluster load assignment", x.GetClusterName(), x); err != nil {
			return err
		}
	}
	for _, x := range r.Secrets {
		if err := check("secret", x.GetName(), x); err != nil {
			return err
		}
	}
	return nil
}

// toAny packs m after validating it: resources nested in an Any are not
// reached by the outer resource's ValidateAll.
func toAny(m proto.Message) (*anypb.Any, error) {
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			return nil, fmt.Errorf("%s: %w", m.ProtoReflect().Descriptor().FullName(), err)
		}
	}
	a, err := anypb.New(m)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return a, nil
}

// adsSource is the ConfigSource every dynamic reference uses: the one ADS
// stream, so updates arrive in the order Envoy needs them.
func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
