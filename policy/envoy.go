package policy

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/proto"

	"github.com/flexgw/flexgw/ir"
)

// EnvoyFilter is one HTTP filter that implements a policy binding on Envoy.
// The translator adds it to the listener's HTTP connection manager chain
// disabled, and enables it (with PerRoute when set) on every route of the
// API or Service the binding targets, so APIs sharing a listener keep their
// own policies.
type EnvoyFilter struct {
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
}

// EnvoyRenderer is implemented by definitions that render to Envoy. A
// policy with a native Envoy filter renders to it; the others render to an
// ext_authz or ext_proc filter that calls the agent's Go policy engine.
type EnvoyRenderer interface {
	RenderEnvoy(env Env, p *ir.Policy) ([]EnvoyFilter, error)
}
