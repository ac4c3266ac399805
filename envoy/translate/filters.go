package translate

import (
	"fmt"
	"sort"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	upstreamcodecv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/flexgw/flexgw/envoy/policyfilter"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

type hcmHTTPFilter = hcmv3.HttpFilter

// The HTTP filter chain of a listener, decided here and only here:
//
//	position 1..n  policy filters, ascending by the Flex policy order (the
//	               built-in data plane's middleware order), ties in the order
//	               the translator first met them (file order). Every one is
//	               added disabled: APIs sharing the listener keep their own
//	               policies, and each route enables exactly the filters of
//	               its API, its own bindings and its services' bindings.
//	last           envoy.filters.http.router: it forwards the request, so
//	               anything after it would never run.
type filterChain struct {
	byName map[string]*chainEntry
	order  []*chainEntry
}

type chainEntry struct {
	filter policyfilter.Filter
	order  int
	seq    int
}

// enabledFilter is one filter a route turns on, with its per-route config.
type enabledFilter struct {
	name     string
	perRoute proto.Message
}

func newFilterChain() *filterChain { return &filterChain{byName: map[string]*chainEntry{}} }

// policyFilters renders bindings through their policies' renderings (envoy/policyfilter),
// adds the filters to the chain and returns what the route must enable.
// svc is set for bindings that target a Service.
func (t *translator) policyFilters(chain *filterChain, a *ir.API, svc *ir.Service, bound []*ir.Policy) ([]enabledFilter, error) {
	var out []enabledFilter
	for _, p := range bound {
		if _, ok := policy.Lookup(p.Name); !ok {
			t.warn("policy %q (%s, %s): not registered; not enforced by Envoy", p.Name, p.Binding, p.Source)
			continue
		}
		render, ok := policyfilter.Lookup(p.Name)
		if !ok {
			t.warn("policy %q (%s, %s): has no Envoy rendering; not enforced by Envoy", p.Name, p.Binding, p.Source)
			continue
		}
		fs, err := render(policyfilter.Env{Snapshot: t.snap, API: a, Service: svc}, p)
		if err != nil {
			return nil, fmt.Errorf("policy %q (binding %s, %s): render for Envoy: %w", p.Name, p.Binding, p.Source, err)
		}
		for _, f := range fs {
			if f.Name == "" || f.Config == nil {
				return nil, fmt.Errorf("policy %q (binding %s): rendered a filter without name or config", p.Name, p.Binding)
			}
			if upstreamFilter(f, t.ownerService(svc, p), p) {
				continue // on the service's cluster (upstreamHTTPFilters)
			}
			if err := t.addPolicyClusters(f.Clusters); err != nil {
				return nil, fmt.Errorf("policy %q (binding %s, %s): %w", p.Name, p.Binding, p.Source, err)
			}
			if len(p.Rules) > 0 {
				// Rules are matched below the API's base path, so a
				// service binding reached from several APIs needs one
				// filter per API.
				if svc != nil {
					f.Name += "@" + a.Key()
				}
				if f.Config, err = withRules(f.Name, f.Config, p.Rules, a.BasePath); err != nil {
					return nil, fmt.Errorf("policy %q (binding %s, %s): rules: %w", p.Name, p.Binding, p.Source, err)
				}
			}
			if _, dup := chain.byName[f.Name]; !dup {
				e := &chainEntry{filter: f, order: p.Order, seq: len(chain.order)}
				chain.byName[f.Name] = e
				chain.order = append(chain.order, e)
			}
			out = append(out, enabledFilter{name: f.Name, perRoute: f.PerRoute})
		}
	}
	return out, nil
}

// ownerService is the Service binding p targets: svc when set, else the
// service whose bindings hold p (the compiler also lists a service's
// bindings on every route that reaches it), nil for an API or route
// binding.
func (t *translator) ownerService(svc *ir.Service, p *ir.Policy) *ir.Service {
	if svc != nil {
		return svc
	}
	if t.policyOwner == nil {
		t.policyOwner = map[*ir.Policy]*ir.Service{}
		for _, s := range t.snap.Services {
			for _, sp := range s.Policies {
				t.policyOwner[sp] = s
			}
		}
	}
	return t.policyOwner[p]
}

// upstreamFilter reports whether f, rendered for binding p, runs on the
// cluster of the Service svc instead of in the listener chain.
func upstreamFilter(f policyfilter.Filter, svc *ir.Service, p *ir.Policy) bool {
	return f.Upstream && svc != nil && len(p.Rules) == 0
}

// upstreamCodec is the last upstream HTTP filter of a cluster: it encodes
// the request to the upstream connection, as the router ends a listener
// chain.
const upstreamCodec = "envoy.filters.http.upstream_codec"

// upstreamHTTPFilters renders the bindings of svc whose filters run on
// its cluster (policyfilter.Filter.Upstream), in policy order, ended by
// the upstream codec; nil when there are none. They apply to every route
// that reaches the service, as the built-in data plane's dispatch hooks do.
func (t *translator) upstreamHTTPFilters(svc *ir.Service) ([]*hcmv3.HttpFilter, error) {
	type entry struct {
		f     policyfilter.Filter
		order int
	}
	var es []entry
	for _, p := range svc.Policies {
		if _, ok := policy.Lookup(p.Name); !ok {
			continue // warned about by policyFilters
		}
		render, ok := policyfilter.Lookup(p.Name)
		if !ok {
			continue
		}
		fs, err := render(policyfilter.Env{Snapshot: t.snap, Service: svc}, p)
		if err != nil {
			return nil, fmt.Errorf("policy %q (binding %s, %s): render for Envoy: %w", p.Name, p.Binding, p.Source, err)
		}
		for _, f := range fs {
			if !upstreamFilter(f, svc, p) {
				continue
			}
			if err := t.addPolicyClusters(f.Clusters); err != nil {
				return nil, fmt.Errorf("policy %q (binding %s, %s): %w", p.Name, p.Binding, p.Source, err)
			}
			es = append(es, entry{f, p.Order})
		}
	}
	if len(es) == 0 {
		return nil, nil
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].order < es[j].order })
	out := make([]*hcmv3.HttpFilter, 0, len(es)+1)
	for _, e := range es {
		cfg, err := toAny(e.f.Config)
		if err != nil {
			return nil, fmt.Errorf("upstream http filter %q: %w", e.f.Name, err)
		}
		out = append(out, &hcmv3.HttpFilter{Name: e.f.Name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: cfg}})
	}
	codec, err := toAny(&upstreamcodecv3.UpstreamCodec{})
	if err != nil {
		return nil, err
	}
	return append(out, &hcmv3.HttpFilter{Name: upstreamCodec, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: codec}}), nil
}

// serviceFilters is policyFilters for svc's bindings on the routes of a,
// rendered once per (API, service): the result is the same for every
// route, and an API belongs to one listener, so to one chain.
func (t *translator) serviceFilters(chain *filterChain, a *ir.API, svc *ir.Service) ([]enabledFilter, error) {
	if len(svc.Policies) == 0 {
		return nil, nil
	}
	k := apiService{a, svc}
	if fs, ok := t.svcFilters[k]; ok {
		return fs, nil
	}
	fs, err := t.policyFilters(chain, a, svc, svc.Policies)
	if err != nil {
		return nil, err
	}
	t.svcFilters[k] = fs
	return fs, nil
}

func (t *translator) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	for _, w := range t.res.Warnings {
		if w == msg {
			return
		}
	}
	t.res.Warnings = append(t.res.Warnings, msg)
}

// httpFilters returns the chain in the order documented on filterChain.
func (c *filterChain) httpFilters(router *hcmv3.HttpFilter) ([]*hcmv3.HttpFilter, error) {
	entries := append([]*chainEntry(nil), c.order...)
	sort.SliceStable(entries, func(i, j int) bool {
		if entries[i].order != entries[j].order {
			return entries[i].order < entries[j].order
		}
		return entries[i].seq < entries[j].seq
	})
	var out []*hcmv3.HttpFilter
	for _, e := range entries {
		cfg, err := toAny(e.filter.Config)
		if err != nil {
			return nil, fmt.Errorf("http filter %q: %w", e.filter.Name, err)
		}
		out = append(out, &hcmv3.HttpFilter{
			Name:       e.filter.Name,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: cfg},
			Disabled:   true,
		})
	}
	return append(out, router), nil
}

// routerFilter is the router, last in every chain; one message shared by
// every listener and API listener of the translation.
func (t *translator) routerFilter() (*hcmv3.HttpFilter, error) {
	if t.router != nil {
		return t.router, nil
	}
	cfg, err := toAny(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	t.router = &hcmv3.HttpFilter{Name: wellknown.Router, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: cfg}}
	return t.router, nil
}

// perFilterConfig enables each filter on a route (FilterConfig with
// disabled=false), carrying its per-route config when it has one.
func (t *translator) perFilterConfig(enabled []enabledFilter) (map[string]*anypb.Any, error) {
	if len(enabled) == 0 {
		return nil, nil
	}
	out := make(map[string]*anypb.Any, len(enabled))
	for _, e := range enabled {
		a, err := t.filterConfig(e)
		if err != nil {
			return nil, err
		}
		out[e.name] = a
	}
	return out, nil
}

// apiPerFilterConfig is perFilterConfig of an API's own filters, built
// once per API.
func (t *translator) apiPerFilterConfig(a *ir.API, enabled []enabledFilter) (map[string]*anypb.Any, error) {
	if pf, ok := t.apiPerFilter[a]; ok {
		return pf, nil
	}
	pf, err := t.perFilterConfig(enabled)
	if err != nil {
		return nil, err
	}
	t.apiPerFilter[a] = pf
	return pf, nil
}

// filterConfig packs one enabled filter's FilterConfig, once per filter
// and per-route config.
func (t *translator) filterConfig(e enabledFilter) (*anypb.Any, error) {
	if a, ok := t.filterAny[e]; ok {
		return a, nil
	}
	fc := &routev3.FilterConfig{}
	if e.perRoute != nil {
		c, err := toAny(e.perRoute)
		if err != nil {
			return nil, fmt.Errorf("per-route config of %q: %w", e.name, err)
		}
		fc.Config = c
	}
	a, err := toAny(fc)
	if err != nil {
		return nil, err
	}
	t.filterAny[e] = a
	return a, nil
}

// addPolicyClusters adds the clusters a policy's filter calls, once per
// name. A TLS cluster of a policy's own outbound call (a JWKS host, an
// introspection endpoint) takes Configuration spec.defaultTLS.
// outboundPolicyCalls when it is set, as Flex applies it.
func (t *translator) addPolicyClusters(cs []*clusterv3.Cluster) error {
	for _, c := range cs {
		if c == nil || t.policyClusters[c.GetName()] {
			continue
		}
		t.policyClusters[c.GetName()] = true
		if pt := t.snap.PolicyCallTLS; pt != nil && c.GetTransportSocket() != nil {
			c = proto.Clone(c).(*clusterv3.Cluster)
			ts, err := policyCallTLS(pt, c)
			if err != nil {
				return fmt.Errorf("cluster %q: defaultTLS.outboundPolicyCalls: %w", c.GetName(), err)
			}
			c.TransportSocket = ts
		}
		t.res.Envoy.Clusters = append(t.res.Envoy.Clusters, c)
	}
	return nil
}
