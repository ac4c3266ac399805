// Package policyfilter renders flexgw's policy bindings to Envoy HTTP
// filters. It is the Envoy half of the policy engine: policy/ holds each
// policy's configuration, validation and built-in middleware; this package
// holds one file per policy turning that validated configuration (the
// policy's exported Spec) into Envoy protos, registered under the policy's
// Flex name. Keeping it here, beside the translator, is what keeps
// go-control-plane out of the built-in data plane's binary.
//
// A policy with a native Envoy filter renders to it; the others render to
// an ext_authz (or, for body inspection, ext_authz with the body) filter
// that calls the agent's Go policy engine, which runs exactly the
// built-in middleware. Adding a policy is one file in policy/ and one file
// here; TestEveryPolicyRendersForEnvoy fails until both exist.
package policyfilter

import (
	"fmt"
	"sort"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/proto"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

// Filter is one HTTP filter that implements a policy binding on Envoy.
// The translator adds it to the listener's HTTP connection manager chain
// disabled, and enables it (with PerRoute when set) on every route of the
// API or Service the binding targets, so APIs sharing a listener keep their
// own policies.
type Filter struct {
	// Name is unique within the listener: "flexgw.<policy>.<binding>".
	Name string
	// Config is the filter's typed_config (an envoy extensions proto).
	Config proto.Message
	// PerRoute is the filter's typed_per_filter_config on the bound routes;
	// nil only enables the filter there.
	PerRoute proto.Message
	// Clusters are clusters the filter calls (the agent's gRPC policy
	// services, a JWKS host). The translator adds each to CDS once, by name.
	Clusters []*clusterv3.Cluster
	// Upstream marks a filter that can run as an upstream HTTP filter of
	// a cluster (HttpProtocolOptions.http_filters, before
	// envoy.filters.http.upstream_codec). The translator puts it there,
	// instead of in the listener chain, when the binding targets a Service
	// and has no rules: it then sees the request as it leaves, after the
	// router's prefix and host rewrites, which a signature must cover.
	// PerRoute is not used there.
	Upstream bool
}

// Env is what a rendering may use: the snapshot and the binding's target.
type Env struct {
	Snapshot *ir.Snapshot
	// API is the ApiInstance the policy is applied to.
	API *ir.API
	// Service is set when the policy is bound to a Service.
	Service *ir.Service
	// AgentGRPC is host:port of the agent's gRPC server that hosts the
	// policy services Envoy calls (RateLimitService, ext_authz); empty
	// means DefaultAgentGRPC (the xDS server's default address).
	AgentGRPC string
}

// Renderer renders one binding of a policy. A nil result with a nil error
// means the policy needs no filter (a config-shaping policy the
// translator applies to clusters and routes).
type Renderer func(env Env, p *ir.Policy) ([]Filter, error)

var (
	mu        sync.RWMutex
	renderers = map[string]Renderer{}
)

// Register adds the rendering of the policy named name (Flex's name);
// called from each file's init.
func Register(name string, r Renderer) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := renderers[name]; dup {
		panic("policyfilter: duplicate registration of " + name)
	}
	renderers[name] = r
}

// Lookup returns the rendering registered for the policy named name.
func Lookup(name string) (Renderer, bool) {
	mu.RLock()
	defer mu.RUnlock()
	r, ok := renderers[name]
	return r, ok
}

// Names lists the policies with a rendering, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(renderers))
	for n := range renderers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// registerAll registers r under each name.
func registerAll(r Renderer, names ...string) {
	for _, n := range names {
		Register(n, r)
	}
}

// None is the rendering of a policy that needs no filter.
func None(Env, *ir.Policy) ([]Filter, error) { return nil, nil }

// Config-shaping policies render nothing: policy.Shape moved their effect
// into the snapshot's listeners, clusters and routes, which the translator
// renders (stream-idle-timeout-flex as the route's idle_timeout).
func init() {
	registerAll(None, "tls", "tls-outbound", "response-timeout-flex", "circuit-breaker-flex",
		"idle-timeout-flex", "stream-idle-timeout-flex",
		"tracing-flex", // the route's tracing (sampling, custom tags) and decorator (span name)
	)
}

// fieldErr is policy.FieldError for what only Envoy cannot express.
func fieldErr(field, format string, args ...any) error {
	return &policy.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
