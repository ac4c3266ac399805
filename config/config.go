// Package config reads a directory of Flex Gateway Local Mode YAML files
// (kinds ApiInstance, Service, PolicyBinding, Configuration; inline and
// resource models) into typed, validated resources.
//
// Every problem is reported as an *Error carrying FILE:LINE, the resource
// and the field; Load reports all of them at once as an ErrorList. The ir
// package compiles a Set into the snapshot the data planes serve.
package config

import (
	"time"
)

// API group versions accepted in apiVersion.
const (
	V1Alpha1 = "gateway.mulesoft.com/v1alpha1"
	V1Beta1  = "gateway.mulesoft.com/v1beta1"
)

// Resource kinds.
const (
	KindApiInstance   = "ApiInstance"
	KindService       = "Service"
	KindPolicyBinding = "PolicyBinding"
	KindConfiguration = "Configuration"
	// KindExtension is the kind Flex gives policies in policyRef.kind.
	KindExtension = "Extension"
	// KindSelector is the targetRef kind of an automated policy: the
	// binding applies to every ApiInstance its selector matches.
	KindSelector = "Selector"
)

// DefaultNamespace applies when metadata.namespace is absent.
const DefaultNamespace = "default"

// DefaultPolicyOrder is Flex's default PolicyBinding order.
const DefaultPolicyOrder = 50

// Route policy names: bindings with these policyRef names define routes
// rather than request policies.
const (
	PolicyRoute         = "route"
	PolicyRouteWeighted = "route-weighted"
)

// Set is every resource read from a configuration directory, in file order
// (files sorted by name, documents in file order).
type Set struct {
	Dir            string
	Files          []string
	APIs           []*ApiInstance
	Services       []*Service
	Bindings       []*PolicyBinding
	Configurations []*Configuration
}

// Meta identifies a resource and where it was written.
type Meta struct {
	APIVersion string
	Kind       string
	Name       string
	Namespace  string
	Labels     map[string]string
	File       string
	// Line is the line of the document's first key.
	Line int
}

// Key is "namespace/name".
func (m *Meta) Key() string { return m.Namespace + "/" + m.Name }

// errorf builds an error located in this resource.
func (m *Meta) errorf(line int, field, reason string) *Error {
	return &Error{File: m.File, Line: line, Kind: m.Kind, Name: m.Name, Field: field, Reason: reason}
}

// Address is a parsed protocol://host:port[/path].
type Address struct {
	// Raw is the address as written (after environment expansion).
	Raw      string
	Protocol string
	Host     string
	Port     int
	// Path is "" when the address has none, else a path without trailing
	// slash ("/api/v1"); a lone "/" is reported as "".
	Path string
	Line int
}

// ApiInstance is one kind: ApiInstance resource.
type ApiInstance struct {
	Meta
	Address Address
	// Services are the inline services in the order they were written.
	Services []*InlineService
	// Policies are the inline spec.policies[].
	Policies []*Policy
	// WebSocket is the `websocket` extension: false refuses WebSocket
	// upgrades on every route of the API that does not set its own.
	WebSocket *bool
}

// InlineService is one spec.services.<name> of an ApiInstance.
type InlineService struct {
	Name     string
	Upstream Upstream
	Routes   []*Route
	Line     int
}

// Upstream is what a Service (resource or inline) says about reaching its
// endpoints, including flexgw's extensions.
type Upstream struct {
	Address Address
	// Endpoints are extra endpoints (extension `endpoints`).
	Endpoints      []Address
	LoadBalancer   string
	HTTP2          bool
	ConnectTimeout time.Duration
	HealthCheck    *HealthCheck
	PassiveHealth  *PassiveHealth
}

// HealthCheck is the `healthCheck` extension.
type HealthCheck struct {
	Path               string
	Interval           time.Duration
	Timeout            time.Duration
	HealthyThreshold   int
	UnhealthyThreshold int
	ExpectedStatuses   []int
}

// PassiveHealth is the `passiveHealth` extension.
type PassiveHealth struct {
	Enabled             bool
	ConsecutiveFailures int
	EjectionTime        time.Duration
	MaxEjectionPercent  int
}

// Route is an inline route or the config of a route/route-weighted binding.
type Route struct {
	Rules           []*Rule
	DestinationPath string
	// Destinations is set for resource-model routes; inline routes go to
	// their service.
	Destinations []*Destination
	Timeout      time.Duration
	Retries      int
	// WebSocket is the `websocket` extension (nil: the API's setting).
	WebSocket *bool
	// RequestHeaders and ResponseHeaders are the `requestHeaders` and
	// `responseHeaders` extensions (Gateway API's header modifier filters).
	RequestHeaders  *HeaderMutation
	ResponseHeaders *HeaderMutation
	// Redirect and DirectResponse are the `redirect` and `directResponse`
	// extensions: the route answers by itself, with no destination.
	Redirect       *Redirect
	DirectResponse *DirectResponse
	// HostRewrite is the `hostRewrite` extension: the Host header the
	// upstream receives.
	HostRewrite string
	// PreserveHost is the `preserveHost` extension: the upstream gets
	// the client's Host header.
	PreserveHost bool
	// Mirrors is the `mirrors` extension: Services that get a copy of
	// the requests the route forwards (Gateway API's RequestMirror).
	Mirrors []Mirror
	Line    int
}

// Redirect is the `redirect` extension (Gateway API's RequestRedirect):
// scheme, host and port replace the request's; path, when given, replaces
// the API base path as destinationPath does.
type Redirect struct {
	Scheme      string
	Host        string
	Port        int
	RewritePath bool
	Path        string
	StatusCode  int
}

// Mirror is one entry of the `mirrors` extension: a Service and the
// percentage of requests it gets a copy of (100 unless set).
type Mirror struct {
	Ref
	Percent float64
}

// DirectResponse is the `directResponse` extension: a fixed answer.
type DirectResponse struct {
	Status int
	Body   string
}

// HeaderMutation is a requestHeaders/responseHeaders extension: headers to
// remove, to set (replacing) and to add (keeping what is there).
type HeaderMutation struct {
	Set    []HeaderValue
	Add    []HeaderValue
	Remove []string
}

// HeaderValue is one header name and value of a HeaderMutation.
type HeaderValue struct {
	Name  string
	Value string
}

// Destination is one weighted target of a route binding.
type Destination struct {
	Ref             Ref
	Weight          int
	DestinationPath string
	// DirectResponse answers this destination's share of the requests
	// (the `directResponse` extension of a route-weighted entry), in
	// place of a destinationRef.
	DirectResponse *DirectResponse
	Line           int
}

// Ref names another resource.
type Ref struct {
	Kind      string
	Name      string
	Namespace string
	Line      int
}

// Key is "namespace/name".
func (r Ref) Key() string { return r.Namespace + "/" + r.Name }

// Rule is one entry of a rules list; its regexes are as written (validated,
// not anchored).
type Rule struct {
	Path    string
	Methods string
	Host    string
	Headers []HeaderRule
	// Query is the `queryParams` extension (route rules only).
	Query []QueryRule
	Line  int
}

// HeaderRule requires a header whose value matches Value.
type HeaderRule struct {
	Name  string
	Value string
}

// QueryRule is one queryParams entry of a route rule: a query parameter
// and the regular expression its first value must match.
type QueryRule struct {
	Name  string
	Value string
}

// Policy is a policy applied to an API or Service: an inline
// spec.policies[i] or a PolicyBinding that is not a route.
type Policy struct {
	Ref Ref
	// Config is the decoded config (maps, slices, scalars) with environment
	// variables expanded; nil when absent.
	Config     any
	ConfigLine int
	Rules      []*Rule
	Order      int
	Line       int
	// Field prefixes error fields: "spec" or "spec.policies[2]".
	Field string
}

// PolicyBinding is one kind: PolicyBinding resource.
type PolicyBinding struct {
	Meta
	TargetRef Ref
	// Selector is set when TargetRef.Kind is Selector (an automated
	// policy): the binding applies to every ApiInstance it matches.
	Selector *Selector
	Policy   Policy
	// Route is set when Policy.Ref.Name is route or route-weighted.
	Route *Route
}

// Selector is spec.targetRef.selector of an automated policy.
type Selector struct {
	// Kind is what it selects; only ApiInstance.
	Kind string
	// Labels must all be present with these values in the ApiInstance's
	// metadata.labels; empty selects every ApiInstance.
	Labels map[string]string
}

// Matches reports whether an ApiInstance with labels is selected.
func (s *Selector) Matches(labels map[string]string) bool {
	for k, v := range s.Labels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// IsRoute reports whether the binding defines a route.
func (b *PolicyBinding) IsRoute() bool { return b.Route != nil }

// Service is one kind: Service resource.
type Service struct {
	Meta
	Upstream Upstream
}

// Configuration is one kind: Configuration resource.
type Configuration struct {
	Meta
	Logging       *Logging
	SharedStorage *SharedStorage
	Tracing       *Tracing
	// Timeouts, CircuitBreaker and DefaultTLS are gateway-wide defaults;
	// a policy bound to an API or Service overrides them there.
	Timeouts       *Timeouts
	CircuitBreaker *CircuitBreakerDefaults
	DefaultTLS     *DefaultTLS
}

// Timeouts is spec.timeouts: Flex's gateway-wide timeouts in seconds.
// Zero means "not set" (the built-in default applies).
type Timeouts struct {
	UpstreamConnectionIdle time.Duration
	UpstreamResponse       time.Duration
	StreamIdle             time.Duration
	Line                   int
}

// CircuitBreakerDefaults is spec.circuitBreaker: thresholds for every
// upstream that no circuit-breaker-flex policy covers. Zero means unset.
type CircuitBreakerDefaults struct {
	MaxConnections     int
	MaxPendingRequests int
	MaxRequests        int
	MaxRetries         int
	MaxConnectionPools int
	Line               int
}

// DefaultTLS is spec.defaultTLS.
type DefaultTLS struct {
	// OutboundPolicyCalls is the TLS context of requests policies make
	// themselves (JWKS, introspection, ext_authz), not of proxied traffic.
	OutboundPolicyCalls *RedisTLS
	Line                int
}

// Logging is spec.logging.
type Logging struct {
	Outputs           []*LogOutput
	AccessLogOutputs  []string
	RuntimeLogOutputs []string
	RuntimeLogLevel   string
	Line              int
}

// LogOutput is one spec.logging.outputs[i].
type LogOutput struct {
	Name       string
	Type       string
	Parameters map[string]string
	Line       int
}

// SharedStorage is spec.sharedStorage.
type SharedStorage struct {
	Redis *Redis
	// Local is sharedStorage.local.enabled.
	Local bool
	Line  int
}

// Redis is spec.sharedStorage.redis.
type Redis struct {
	Address  string
	Username string
	Password string
	DB       int
	TLS      *RedisTLS
	Line     int
}

// RedisTLS is spec.sharedStorage.redis.tls.
type RedisTLS struct {
	TrustedCA      string
	Cert           string
	Key            string
	KeyPassphrase  string
	SkipValidation bool
	MinVersion     string
	MaxVersion     string
	ALPN           []string
	Ciphers        []string
}

// Tracing is spec.tracing (apiVersion v1beta1).
type Tracing struct {
	ProviderType       string
	ProviderProperties map[string]string
	SamplingClient     float64
	SamplingRandom     float64
	SamplingOverall    float64
	Labels             []TracingLabel
	Line               int
}

// TracingLabel is one spec.tracing.labels[i].
type TracingLabel struct {
	Name         string
	Type         string
	KeyName      string
	DefaultValue string
}
