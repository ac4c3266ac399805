// Package policy is flexgw's policy engine: one Go type per Flex policy,
// each validating its own configuration, running as middleware in the
// built-in data plane and rendering to Envoy where Envoy has a native filter.
//
// Policies register themselves in init() (one file per policy); the data
// plane and the Envoy translator find them by Flex's policy name.
package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"

	"github.com/flexgw/flexgw/ir"
)

// Middleware wraps the next handler of the built-in data plane. It either
// calls next (possibly with a changed request and a wrapped writer, which
// is how a policy acts on the response) or writes a response itself.
//
// Nothing of a request may be used after the handler returns: not the
// *http.Request, its Header, URL or Body, not its Context (values,
// Done), not the ResponseWriter. The built-in data plane reuses all of
// them for the connection's next request, as net/http already does for
// the writer and the body. A policy that needs something later (a
// cache entry, a background refresh) copies it and uses its own context.
type Middleware func(next http.Handler) http.Handler

// Env is what a policy may use when it is built for one snapshot.
type Env struct {
	Snapshot *ir.Snapshot
	// API is the ApiInstance the policy is applied to.
	API *ir.API
	// Service is set when the policy is bound to a Service.
	Service *ir.Service
	// Route is the route the chain is built for: the built-in data plane
	// builds one chain per route; nil where a chain serves no one route.
	Route  *ir.Route
	Logger *slog.Logger
	// Shared is the store shared by every replica (Redis), nil when the
	// configuration declares none.
	Shared SharedStore
	// AgentGRPC is host:port of the agent's gRPC server that hosts the
	// policy services Envoy calls (RateLimitService, ext_authz); Envoy
	// renderings point the AgentCluster at it. Empty means
	// DefaultAgentGRPC (the xDS server's default address).
	AgentGRPC string
}

// SharedStore is the small part of Redis the clusterizable policies need.
// It is declared here, where it is used; the agent supplies the Redis one.
type SharedStore interface {
	// Incr adds one to key's counter in the window that expires after ttl
	// and returns the new count and the time left in the window.
	Incr(ctx context.Context, key string, ttlMillis int64) (count int64, remainingMillis int64, err error)
}

// QuotaStore is a SharedStore that knows the limit a count is read against,
// so it may take positions from the shared counter several at a time and
// hand them out locally (sharedstore.Redis: one round trip per lease, not
// per request). Rate limits use it when the store implements it.
type QuotaStore interface {
	// Acquire takes one position in key's window and returns it (the
	// request is within the limit when it is ≤ limit) and the time left;
	// a position above the limit may be reported as limit+1.
	Acquire(ctx context.Context, key string, limit, ttlMillis int64) (position int64, remainingMillis int64, err error)
}

// Definition is one Flex policy.
type Definition interface {
	// Name is Flex's policy name, e.g. "rate-limiting-flex".
	Name() string
	// Validate checks a policy's configuration and returns errors whose
	// text names the field ("config.rateLimits[0].maximumRequests: must be > 0").
	Validate(config json.RawMessage) error
	// Build returns the middleware for one binding of the policy.
	Build(env Env, p *ir.Policy) (Middleware, error)
}

// Warner is implemented by a policy whose valid configuration may still
// not do what its author expects (a client-controlled header read as the
// client address): `flexgw validate` prints each warning and `flexgw run`
// logs it on every accepted configuration.
type Warner interface {
	Warnings(p *ir.Policy) []string
}

// Warnings returns every Warner warning of the snapshot's policies, each
// "FILE:LINE: policy NAME (BINDING): text", once per binding.
func Warnings(s *ir.Snapshot) []string {
	var out []string
	seen := map[string]bool{}
	add := func(ps []*ir.Policy) {
		for _, p := range ps {
			d, ok := Lookup(p.Name)
			w, isW := d.(Warner)
			if !ok || !isW || seen[p.Binding] {
				continue
			}
			seen[p.Binding] = true
			for _, msg := range w.Warnings(p) {
				out = append(out, fmt.Sprintf("%s: policy %q (%s): %s", p.Source, p.Name, p.Binding, msg))
			}
		}
	}
	for _, a := range s.APIs() {
		add(a.Policies)
	}
	for _, svc := range s.Services {
		add(svc.Policies)
	}
	return out
}

var (
	mu       sync.RWMutex
	registry = map[string]Definition{}
)

// Register adds a policy definition; called from each policy file's init.
func Register(d Definition) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[d.Name()]; dup {
		panic("policy: duplicate registration of " + d.Name())
	}
	registry[d.Name()] = d
}

// Lookup returns the definition registered under name.
func Lookup(name string) (Definition, bool) {
	mu.RLock()
	defer mu.RUnlock()
	d, ok := registry[name]
	return d, ok
}

// Names lists the registered policy names, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Outcomes recorded by policies.
const (
	Allowed = "allowed"
	Denied  = "denied"
	Error   = "error"
)

// Recorder receives policy decisions for one request; the data plane puts
// one in the request context to fill the access-log record and metrics.
type Recorder interface {
	Decide(policy, outcome string)
}

// RecorderKey is the context key a Recorder is found under. WithRecorder
// sets it; a context may also answer it itself (the built-in data plane's
// request state does, saving an allocation per request).
type RecorderKey struct{}

// WithRecorder returns ctx carrying rec.
func WithRecorder(ctx context.Context, rec Recorder) context.Context {
	return context.WithValue(ctx, RecorderKey{}, rec)
}

// Decide records a policy's outcome for the request, if anyone listens.
func Decide(r *http.Request, policy, outcome string) {
	if rec, ok := r.Context().Value(RecorderKey{}).(Recorder); ok {
		rec.Decide(policy, outcome)
	}
}

// Context extension keys the Envoy ext_authz rendering sends with every
// check and policy/extauthz reads, so the agent's policy engine knows
// which binding to run.
const (
	ExtAuthzKeyAPI     = "flexgw_api"
	ExtAuthzKeyPolicy  = "flexgw_policy"
	ExtAuthzKeyBinding = "flexgw_binding"
)

// gRPC metadata the Envoy ext_proc rendering of an agent-run policy sends
// on every stream (ExtProcPerRoute grpc_initial_metadata): the binding
// policy/extauthz runs for the request and its response.
const (
	ExtProcMetaAPI     = "x-flexgw-api"
	ExtProcMetaPolicy  = "x-flexgw-policy"
	ExtProcMetaBinding = "x-flexgw-binding"
)
