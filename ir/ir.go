// Package ir holds flexgw's intermediate representation: the immutable,
// versioned snapshot that configuration compiles into and that every data
// plane (the built-in Go proxy and the Envoy xDS translator) consumes.
//
// Nothing downstream of ir re-reads YAML. A Snapshot is never mutated after
// Compile returns it; a reload produces a new Snapshot with a higher Version.
package ir

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/flexgw/flexgw/ir/irlog"
)

// Snapshot is one complete, validated gateway configuration.
type Snapshot struct {
	// Version increases by one on every accepted reload.
	Version uint64 `json:"version"`
	// Hash is a content hash of the compiled resources; equal hashes mean
	// equal behaviour, so a reload with an unchanged hash can be skipped.
	Hash      string    `json:"hash"`
	CreatedAt time.Time `json:"createdAt"`

	Listeners     []*Listener    `json:"listeners"`
	Services      []*Service     `json:"services"`
	Logging       *Logging       `json:"logging,omitempty"`
	Tracing       *Tracing       `json:"tracing,omitempty"`
	SharedStorage *SharedStorage `json:"sharedStorage,omitempty"`
	// PolicyCallTLS is Configuration.spec.defaultTLS.outboundPolicyCalls:
	// the TLS context of requests policies make themselves (JWKS fetches,
	// introspection, external authorization); nil means system roots.
	PolicyCallTLS *UpstreamTLS `json:"policyCallTLS,omitempty"`
	// Warnings are problems of a valid configuration (a client-controlled
	// header read as the client address), "FILE:LINE: text" each; they do
	// not change behaviour and are not part of Hash.
	Warnings []string `json:"warnings,omitempty"`
}

// Service returns the service with the given key (namespace/name), or nil.
func (s *Snapshot) Service(key string) *Service {
	for _, svc := range s.Services {
		if svc.Key() == key {
			return svc
		}
	}
	return nil
}

// APIs returns every API of every listener, in listener order.
func (s *Snapshot) APIs() []*API {
	var out []*API
	for _, l := range s.Listeners {
		out = append(out, l.APIs...)
	}
	return out
}

// Protocol is the scheme a listener or service speaks.
type Protocol string

// Listener and service protocols.
const (
	HTTP  Protocol = "http"
	HTTPS Protocol = "https"
)

// Listener is one bound address shared by every ApiInstance whose
// spec.address names the same host:port.
type Listener struct {
	// Name is stable and unique: "<protocol>_<host>_<port>".
	Name     string   `json:"name"`
	Protocol Protocol `json:"protocol"`
	Host     string   `json:"host"`
	Port     int      `json:"port"`
	// TLS is set for https listeners (from the `tls` policy).
	TLS *ServerTLS `json:"tls,omitempty"`
	// StreamIdleTimeout ends a request on which no byte moved in either
	// direction for this long (Configuration spec.timeouts.streamIdleSeconds);
	// 0 means DefaultStreamIdleTimeout.
	StreamIdleTimeout time.Duration `json:"streamIdleTimeout,omitempty"`
	// APIs are ordered longest base path first, so the first API whose
	// base path prefixes the request path is the one that serves it.
	APIs []*API `json:"apis"`
}

// Address is host:port suitable for net.Listen.
func (l *Listener) Address() string {
	return joinHostPort(l.Host, l.Port)
}

// API is one ApiInstance: a base path on a listener with its routes and policies.
type API struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// BasePath is "/" or a path without trailing slash ("/api/json").
	// Rules match the request path with the base path removed.
	BasePath string `json:"basePath"`
	// Routes are tried in order; the first whose rules match wins.
	Routes []*Route `json:"routes"`
	// Policies apply to every request of this API, sorted by Order (stable).
	Policies []*Policy         `json:"policies,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	// WebSocket false refuses WebSocket upgrades on the routes that do
	// not decide for themselves (nil: allowed).
	WebSocket *bool  `json:"websocket,omitempty"`
	Source    Source `json:"source"`
}

// WebSocketAllowed reports whether r (a route of a) forwards WebSocket
// upgrades: the route's own setting, else the API's, else yes. Refused
// upgrades get 403 on both data planes, as Envoy answers a route whose
// upgrade_configs disable them.
func (a *API) WebSocketAllowed(r *Route) bool {
	switch {
	case r != nil && r.WebSocket != nil:
		return *r.WebSocket
	case a.WebSocket != nil:
		return *a.WebSocket
	}
	return true
}

// Key is "namespace/name", the identity used in references.
func (a *API) Key() string { return a.Namespace + "/" + a.Name }

// Route sends matching requests to one or more weighted destinations, or
// answers them itself (Redirect, DirectResponse).
type Route struct {
	// Name is the route's label in metrics and logs: the PolicyBinding name
	// for the resource model, "<service>-<index>" for the inline model.
	Name string `json:"name"`
	// Rules are OR'd; an empty list matches every request.
	Rules        []Rule        `json:"rules,omitempty"`
	Destinations []Destination `json:"destinations"`
	// Redirect and DirectResponse, when set, make the route answer by
	// itself; it then has no destinations.
	Redirect       *Redirect       `json:"redirect,omitempty"`
	DirectResponse *DirectResponse `json:"directResponse,omitempty"`
	// HostRewrite replaces the Host header the upstream receives (Gateway
	// API's URLRewrite hostname); "" sends the usual one.
	HostRewrite string `json:"hostRewrite,omitempty"`
	// PreserveHost sends the client's Host header upstream instead of the
	// endpoint's host[:port] (the built-in's default). Envoy always
	// forwards the client's, so it changes the built-in data plane only.
	PreserveHost bool `json:"preserveHost,omitempty"`
	// Mirrors are services that get a copy of the requests the route
	// forwards, their answers dropped (Gateway API's RequestMirror,
	// Envoy's request_mirror_policies).
	Mirrors []Mirror `json:"mirrors,omitempty"`
	// DestinationPath is prepended to the upstream path.
	DestinationPath string `json:"destinationPath,omitempty"`
	// Timeout bounds the whole upstream exchange; 0 means DefaultRouteTimeout.
	Timeout time.Duration `json:"timeout,omitempty"`
	// StreamIdleTimeout overrides the listener's stream idle timeout for
	// this route (`stream-idle-timeout-flex`); 0 keeps the listener's.
	StreamIdleTimeout time.Duration `json:"streamIdleTimeout,omitempty"`
	Retry             RetryPolicy   `json:"retry"`
	// WebSocket is the route's own upgrade setting (see
	// API.WebSocketAllowed); nil leaves it to the API.
	WebSocket *bool `json:"websocket,omitempty"`
	// Headers are the route's own header changes; nil changes nothing.
	Headers *HeaderFilters `json:"headers,omitempty"`
	// Tracing overrides Configuration spec.tracing for this route's
	// requests (`tracing-flex` on the API); nil keeps the global setting.
	Tracing *TracingOverride `json:"tracing,omitempty"`
	// Policies bound to a Service apply to the routes that reach it.
	Policies []*Policy `json:"policies,omitempty"`
	Source   Source    `json:"source"`
}

// DefaultRouteTimeout applies when a route sets none (Envoy's default too).
const DefaultRouteTimeout = 15 * time.Second

// Flex's defaults for the timeouts Configuration spec.timeouts sets.
const (
	DefaultStreamIdleTimeout   = 300 * time.Second
	DefaultUpstreamIdleTimeout = 60 * time.Second
)

// EffectiveStreamIdle returns StreamIdleTimeout or the default.
func (l *Listener) EffectiveStreamIdle() time.Duration {
	if l.StreamIdleTimeout > 0 {
		return l.StreamIdleTimeout
	}
	return DefaultStreamIdleTimeout
}

// EffectiveTimeout returns Timeout or the default.
func (r *Route) EffectiveTimeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultRouteTimeout
}

// RetryPolicy retries idempotent requests whose upstream connection failed
// before any byte of the request was sent.
type RetryPolicy struct {
	// Attempts is the number of retries after the first try (0 = none).
	Attempts int `json:"attempts"`
}

// Destination is one weighted upstream of a route.
type Destination struct {
	// Service is the key (namespace/name) of a Service in the snapshot.
	Service string `json:"service"`
	// Weight is relative; a route with one destination has weight 100.
	Weight uint32 `json:"weight"`
	// DestinationPath, when set, replaces Route.DestinationPath for this
	// destination (route-weighted bindings give each destination its own).
	DestinationPath string `json:"destinationPath,omitempty"`
	// DirectResponse, when set, answers the requests this destination
	// takes instead of a service (Service is then ""): Gateway API's 500
	// for the share of a rule weighted to a backendRef that cannot be
	// used.
	DirectResponse *DirectResponse `json:"directResponse,omitempty"`
}

// Rule matches a request when every set field matches (AND).
type Rule struct {
	Path    *Regexp       `json:"path,omitempty"`
	Methods *Regexp       `json:"methods,omitempty"`
	Host    *Regexp       `json:"host,omitempty"`
	Headers []HeaderMatch `json:"headers,omitempty"`
	// Query are query parameter matches (route rules only).
	Query []QueryMatch `json:"query,omitempty"`
}

// HeaderMatch requires a request header whose value matches Value.
type HeaderMatch struct {
	Name  string  `json:"name"`
	Value *Regexp `json:"value"`
}

// Regexp is a compiled, fully anchored regular expression that remembers
// the source the user wrote (for JSON output and the Envoy translation).
type Regexp struct {
	// Source is the expression as written in the config.
	Source string
	re     *regexp.Regexp
}

// CompileRegexp anchors src at both ends (Flex and Envoy both match the
// whole value) and compiles it.
func CompileRegexp(src string) (*Regexp, error) {
	re, err := regexp.Compile("^(?:" + src + ")$")
	if err != nil {
		return nil, err
	}
	return &Regexp{Source: src, re: re}, nil
}

// MustRegexp is CompileRegexp that panics; for tests and constants.
func MustRegexp(src string) *Regexp {
	r, err := CompileRegexp(src)
	if err != nil {
		panic(err)
	}
	return r
}

// Re returns the anchored compiled expression.
func (r *Regexp) Re() *regexp.Regexp { return r.re }

// MatchString reports whether the whole of s matches.
func (r *Regexp) MatchString(s string) bool { return r.re.MatchString(s) }

// MarshalJSON renders the source expression.
func (r *Regexp) MarshalJSON() ([]byte, error) { return json.Marshal(r.Source) }

// UnmarshalJSON compiles the source expression.
func (r *Regexp) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	c, err := CompileRegexp(s)
	if err != nil {
		return err
	}
	*r = *c
	return nil
}

// LBPolicy chooses an endpoint among a service's healthy endpoints.
type LBPolicy string

// Load-balancing policies.
const (
	RoundRobin   LBPolicy = "round-robin"
	LeastRequest LBPolicy = "least-request"
)

// Service is an upstream: one or more endpoints speaking one protocol.
type Service struct {
	Name      string   `json:"name"`
	Namespace string   `json:"namespace"`
	Protocol  Protocol `json:"protocol"`
	// HTTP2 makes upstream connections use HTTP/2 (h2 over TLS, h2c in clear).
	HTTP2 bool `json:"http2,omitempty"`
	// BasePath is the path part of the service address ("" when none),
	// prepended to every upstream path before DestinationPath.
	BasePath       string            `json:"basePath,omitempty"`
	Endpoints      []Endpoint        `json:"endpoints"`
	LB             LBPolicy          `json:"lb"`
	ConnectTimeout time.Duration     `json:"connectTimeout"`
	HealthCheck    *HealthCheck      `json:"healthCheck,omitempty"`
	Outlier        *OutlierDetection `json:"outlierDetection,omitempty"`
	// TLS configures upstream TLS (https services, `tls-outbound` policy).
	TLS *UpstreamTLS `json:"tls,omitempty"`
	// CircuitBreaker limits concurrency (`circuit-breaker-flex`, or
	// Configuration spec.circuitBreaker for every service).
	CircuitBreaker *CircuitBreaker `json:"circuitBreaker,omitempty"`
	// IdleTimeout closes a pooled upstream connection idle this long
	// (Configuration spec.timeouts.upstreamConnectionIdleSeconds, or
	// `idle-timeout-flex` on the service); 0 means DefaultUpstreamIdleTimeout.
	IdleTimeout time.Duration `json:"idleTimeout,omitempty"`
	// Policies bound to this Service by PolicyBinding targetRef.
	Policies []*Policy `json:"policies,omitempty"`
	Source   Source    `json:"source"`
}

// Key is "namespace/name".
func (s *Service) Key() string { return s.Namespace + "/" + s.Name }

// Endpoint is one upstream address.
type Endpoint struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

// Address is host:port.
func (e Endpoint) Address() string { return joinHostPort(e.Host, e.Port) }

// HealthCheck is an active HTTP health check.
type HealthCheck struct {
	Path               string        `json:"path"`
	Interval           time.Duration `json:"interval"`
	Timeout            time.Duration `json:"timeout"`
	HealthyThreshold   int           `json:"healthyThreshold"`
	UnhealthyThreshold int           `json:"unhealthyThreshold"`
	// ExpectedStatuses lists accepted codes; empty means 200-399.
	ExpectedStatuses []int `json:"expectedStatuses,omitempty"`
}

// OutlierDetection is passive health: an endpoint that fails
// ConsecutiveFailures times in a row (connect errors or 5xx from the
// gateway's point of view: 502/503/504) is ejected for BaseEjectionTime.
type OutlierDetection struct {
	ConsecutiveFailures int           `json:"consecutiveFailures"`
	BaseEjectionTime    time.Duration `json:"baseEjectionTime"`
	// MaxEjectionPercent caps how many endpoints may be ejected at once.
	MaxEjectionPercent int `json:"maxEjectionPercent"`
}

// CircuitBreaker caps in-flight work to a service.
type CircuitBreaker struct {
	MaxConnections     int `json:"maxConnections,omitempty"`
	MaxPendingRequests int `json:"maxPendingRequests,omitempty"`
	MaxRequests        int `json:"maxRequests,omitempty"`
	MaxRetries         int `json:"maxRetries,omitempty"`
	MaxConnectionPools int `json:"maxConnectionPools,omitempty"`
}

// ServerTLS is inbound TLS for a listener.
type ServerTLS struct {
	CertPEM string `json:"-"`
	KeyPEM  string `json:"-"`
	// SNICerts are more certificates on the same listener (a Gateway's
	// HTTPS listeners sharing a port, an Ingress's spec.tls entries): a
	// client gets the first certificate, CertPEM's included, whose names
	// cover the server name it asks for (SNI), else CertPEM's.
	SNICerts []CertKey `json:"-"`
	// ClientCAPEM enables mTLS when set.
	ClientCAPEM       string   `json:"-"`
	RequireClientCert bool     `json:"requireClientCert,omitempty"`
	MinVersion        string   `json:"minVersion,omitempty"`
	MaxVersion        string   `json:"maxVersion,omitempty"`
	ALPN              []string `json:"alpn,omitempty"`
	Ciphers           []string `json:"ciphers,omitempty"`
}

// CertKey is one certificate chain and its private key, PEM.
type CertKey struct {
	CertPEM string `json:"-"`
	KeyPEM  string `json:"-"`
}

// UpstreamTLS is outbound TLS to a service.
type UpstreamTLS struct {
	SNI            string   `json:"sni,omitempty"`
	CAPEM          string   `json:"-"`
	CertPEM        string   `json:"-"`
	KeyPEM         string   `json:"-"`
	SkipValidation bool     `json:"skipValidation,omitempty"`
	MinVersion     string   `json:"minVersion,omitempty"`
	MaxVersion     string   `json:"maxVersion,omitempty"`
	ALPN           []string `json:"alpn,omitempty"`
	Ciphers        []string `json:"ciphers,omitempty"`
}

// Policy is one policy applied to an API, a service, or (through rules) a
// subset of their requests. Config is the policy's own configuration with
// $VAR references already expanded, as JSON; the policy package decodes it.
type Policy struct {
	// Name is Flex's policy name ("rate-limiting-flex").
	Name string `json:"name"`
	// Binding names where it came from: the PolicyBinding's namespace/name,
	// or "<api namespace/name>#policies[<i>]" for inline policies.
	Binding string `json:"binding"`
	// Order sorts the chain ascending (Flex default 50); ties keep file order.
	Order  int             `json:"order"`
	Config json.RawMessage `json:"config,omitempty"`
	// Rules restrict the policy to matching requests (OR'd); empty = all.
	Rules  []Rule `json:"rules,omitempty"`
	Source Source `json:"source"`
}

// Logging is Configuration.spec.logging (defined in irlog, a leaf
// package, so log shipping links it without the config compiler).
type Logging = irlog.Logging

// LogOutput is one named output (Fluent Bit output type and parameters,
// every scalar parameter rendered as a string as Fluent Bit sees it).
type LogOutput = irlog.LogOutput

// Tracing is Configuration.spec.tracing (v1beta1).
type Tracing struct {
	Provider TracingProvider `json:"provider"`
	Sampling TracingSampling `json:"sampling"`
	Labels   []TracingLabel  `json:"labels,omitempty"`
	Source   Source          `json:"source"`
}

// Tracing provider types Flex documents.
const (
	TracingOpenTelemetry = "opentelemetry"
	// TracingAnypoint sends spans to Anypoint Monitoring, which only a
	// gateway connected to Anypoint Platform can reach.
	TracingAnypoint = "anypoint"
)

// Exports reports whether spans leave the gateway: always for
// opentelemetry, and for anypoint only when provider.properties.address
// names an OTLP collector (Local Mode has no Anypoint Monitoring).
func (t *Tracing) Exports() bool {
	if t == nil {
		return false
	}
	switch strings.ToLower(t.Provider.Type) {
	case TracingOpenTelemetry:
		return true
	case TracingAnypoint:
		return strings.TrimSpace(t.Provider.Properties["address"]) != ""
	}
	return false
}

// Explain says in one sentence what the tracing configuration does here,
// for the agent's status; "" when it does what it says.
func (t *Tracing) Explain() string {
	if t == nil || !strings.EqualFold(t.Provider.Type, TracingAnypoint) {
		return ""
	}
	if t.Exports() {
		return "provider anypoint: spans go to the OTLP collector in provider.properties.address; Anypoint Monitoring needs a gateway connected to Anypoint Platform, which Local Mode is not"
	}
	return "provider anypoint: tracing is off, no span is exported: Anypoint Monitoring needs a gateway connected to Anypoint Platform; set provider.properties.address to an OTLP collector (or use type opentelemetry) to export them"
}

// TracingProvider names the collector.
type TracingProvider struct {
	Type       string            `json:"type"`
	Properties map[string]string `json:"properties,omitempty"`
}

// TracingSampling holds Flex's three sampling percentages (0-100).
type TracingSampling struct {
	Client  float64 `json:"client"`
	Random  float64 `json:"random"`
	Overall float64 `json:"overall"`
}

// TracingOverride is an API's `tracing-flex` policy: its sampling replaces
// the global one, its labels are added to the global labels (a label of
// the same name replaces the global one), and SpanName, when set, names
// the request's server span. It only acts where spec.tracing exports.
type TracingOverride struct {
	Sampling TracingSampling `json:"sampling"`
	SpanName string          `json:"spanName,omitempty"`
	Labels   []TracingLabel  `json:"labels,omitempty"`
}

// TracingLabel adds an attribute to every span.
type TracingLabel struct {
	Name string `json:"name"`
	// Type is "literal", "environment" or "requestHeader".
	Type         string `json:"type"`
	Value        string `json:"value,omitempty"`
	Key          string `json:"key,omitempty"`
	DefaultValue string `json:"defaultValue,omitempty"`
}

// EffectiveIdleTimeout returns IdleTimeout or the default.
func (s *Service) EffectiveIdleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return DefaultUpstreamIdleTimeout
}

// SharedStorage is Configuration.spec.sharedStorage.
type SharedStorage struct {
	Redis *Redis `json:"redis,omitempty"`
}

// Redis is the shared store of every replica.
type Redis struct {
	Address  string    `json:"address"`
	Username string    `json:"username,omitempty"`
	Password string    `json:"-"`
	DB       int       `json:"db"`
	TLS      *RedisTLS `json:"tls,omitempty"`
}

// RedisTLS configures TLS to Redis.
type RedisTLS struct {
	TrustedCA      string   `json:"-"`
	CertPEM        string   `json:"-"`
	KeyPEM         string   `json:"-"`
	SkipValidation bool     `json:"skipValidation,omitempty"`
	MinVersion     string   `json:"minVersion,omitempty"`
	MaxVersion     string   `json:"maxVersion,omitempty"`
	ALPN           []string `json:"alpn,omitempty"`
	Ciphers        []string `json:"ciphers,omitempty"`
	// KeyPassphrase decrypts KeyPEM when it is encrypted.
	KeyPassphrase string `json:"-"`
}

// Source locates a resource in the config directory for error messages.
type Source = irlog.Source

func joinHostPort(host string, port int) string {
	p := strconv.Itoa(port)
	for i := 0; i < len(host); i++ {
		if host[i] == ':' {
			return "[" + host + "]:" + p
		}
	}
	return host + ":" + p
}
