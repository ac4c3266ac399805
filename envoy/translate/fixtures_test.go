package translate

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"

	"github.com/flexgw/flexgw/envoy/policyfilter"
	"github.com/flexgw/flexgw/envoy/translate/translatetest"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

// testRenderer is a policy definition registered only in this test binary,
// so the filter wiring is tested without depending on any real policy.
type testRenderer struct{}

const testPolicyName = "flexgw-translate-test-cors"

func (testRenderer) Name() string                   { return testPolicyName }
func (testRenderer) Validate(json.RawMessage) error { return nil }
func (testRenderer) Build(policy.Env, *ir.Policy) (policy.Middleware, error) {
	return nil, errors.New("not used")
}
func renderTestPolicy(env policyfilter.Env, p *ir.Policy) ([]policyfilter.Filter, error) {
	return []policyfilter.Filter{{
		Name:     "flexgw." + testPolicyName + "." + p.Binding,
		Config:   &corsv3.Cors{},
		PerRoute: &corsv3.CorsPolicy{AllowMethods: "GET"},
	}}, nil
}

func init() {
	policy.Register(testRenderer{})
	policyfilter.Register(testPolicyName, renderTestPolicy)
}

func src(kind, name string) ir.Source {
	return ir.Source{File: "conf.d/" + name + ".yaml", Line: 1, Kind: kind, Name: name}
}

// basicSnapshot has two ApiInstances sharing one listener by base path and
// exercises every route and cluster feature.
func basicSnapshot() *ir.Snapshot {
	orders := &ir.Service{
		Name: "orders", Namespace: "default", Protocol: ir.HTTP,
		BasePath:       "/v1",
		Endpoints:      []ir.Endpoint{{Host: "10.0.0.1", Port: 8080}, {Host: "10.0.0.2", Port: 8080}},
		LB:             ir.RoundRobin,
		ConnectTimeout: 2 * time.Second,
		HealthCheck:    &ir.HealthCheck{Path: "/healthz", Interval: 5 * time.Second, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 3},
		Outlier:        &ir.OutlierDetection{ConsecutiveFailures: 5, BaseEjectionTime: 30 * time.Second, MaxEjectionPercent: 50},
		CircuitBreaker: &ir.CircuitBreaker{MaxConnections: 100, MaxPendingRequests: 10, MaxRequests: 200, MaxRetries: 3},
		Source:         src("Service", "orders"),
	}
	canary := &ir.Service{
		Name: "orders-canary", Namespace: "default", Protocol: ir.HTTP, BasePath: "/v1",
		Endpoints: []ir.Endpoint{{Host: "10.0.1.1", Port: 8080}},
		LB:        ir.RoundRobin, Source: src("Service", "orders-canary"),
	}
	users := &ir.Service{
		Name: "users", Namespace: "default", Protocol: ir.HTTPS, HTTP2: true,
		Endpoints:   []ir.Endpoint{{Host: "users.internal", Port: 443}},
		LB:          ir.LeastRequest,
		TLS:         &ir.UpstreamTLS{SNI: "users.example.com", MinVersion: "1.2"},
		HealthCheck: &ir.HealthCheck{Path: "/ready", ExpectedStatuses: []int{200, 204}},
		Policies: []*ir.Policy{{Name: testPolicyName, Binding: "default/users-cors", Order: 10,
			Config: json.RawMessage(`{}`), Source: src("PolicyBinding", "users-cors")}},
		Source: src("Service", "users"),
	}
	ordersAPI := &ir.API{
		Name: "orders-api", Namespace: "default", BasePath: "/api/orders",
		Policies: []*ir.Policy{{Name: testPolicyName, Binding: "default/orders-api#policies[0]", Order: 50,
			Config: json.RawMessage(`{}`), Source: src("ApiInstance", "orders-api"),
			// Only writes, or reads of one item from a tenant.
			Rules: []ir.Rule{
				{Methods: ir.MustRegexp("POST|PUT")},
				{Path: ir.MustRegexp("/items/[0-9]+"), Headers: []ir.HeaderMatch{{Name: "X-Tenant", Value: ir.MustRegexp("[a-z]+")}}},
			}}},
		Routes: []*ir.Route{
			{
				Name: "create",
				Rules: []ir.Rule{{
					Path:    ir.MustRegexp("(/.*)"),
					Methods: ir.MustRegexp("POST|PUT"),
					Host:    ir.MustRegexp(`shop\.example\.com(:\d+)?`),
					Headers: []ir.HeaderMatch{{Name: "X-Tenant", Value: ir.MustRegexp("[a-z]+")}},
				}},
				Destinations:    []ir.Destination{{Service: "default/orders", Weight: 80}, {Service: "default/orders-canary", Weight: 20}},
				DestinationPath: "/orders",
				Timeout:         3 * time.Second,
				Retry:           ir.RetryPolicy{Attempts: 2},
				Source:          src("PolicyBinding", "create"),
			},
			{
				Name:         "read",
				Rules:        []ir.Rule{{Path: ir.MustRegexp("/items/([0-9]+)")}, {Path: ir.MustRegexp("/all")}},
				Destinations: []ir.Destination{{Service: "default/orders", Weight: 100}},
				Source:       src("PolicyBinding", "read"),
			},
		},
		Source: src("ApiInstance", "orders-api"),
	}
	rootAPI := &ir.API{
		Name: "users-api", Namespace: "default", BasePath: "/",
		Routes: []*ir.Route{{
			Name:         "users-0",
			Destinations: []ir.Destination{{Service: "default/users", Weight: 100}},
			Source:       src("ApiInstance", "users-api"),
		}},
		Source: src("ApiInstance", "users-api"),
	}
	return &ir.Snapshot{
		Version: 3,
		Listeners: []*ir.Listener{{
			Name: "http_0.0.0.0_8081", Protocol: ir.HTTP, Host: "0.0.0.0", Port: 8081,
			APIs: []*ir.API{ordersAPI, rootAPI},
		}},
		Services: []*ir.Service{orders, canary, users},
	}
}

// tlsSnapshot has an https listener with mTLS, two certificates and
// OpenTelemetry tracing.
func tlsSnapshot() *ir.Snapshot {
	svc := &ir.Service{
		Name: "echo", Namespace: "prod", Protocol: ir.HTTP,
		Endpoints: []ir.Endpoint{{Host: "127.0.0.1", Port: 9000}},
		Source:    src("Service", "echo"),
	}
	api := &ir.API{
		Name: "echo", Namespace: "prod", BasePath: "/echo",
		Routes: []*ir.Route{{Name: "echo-0", Destinations: []ir.Destination{{Service: "prod/echo", Weight: 100}}, Source: src("ApiInstance", "echo")}},
		Source: src("ApiInstance", "echo"),
	}
	return &ir.Snapshot{
		Version: 1,
		Listeners: []*ir.Listener{{
			Name: "https_0.0.0.0_8443", Protocol: ir.HTTPS, Host: "0.0.0.0", Port: 8443,
			TLS: &ir.ServerTLS{
				CertPEM:           "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
				KeyPEM:            "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
				ClientCAPEM:       "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n",
				RequireClientCert: true, MinVersion: "1.2", MaxVersion: "1.3",
				// A second certificate, served by SNI (Gateway HTTPS
				// listeners sharing the port).
				SNICerts: []ir.CertKey{{CertPEM: "-----BEGIN CERTIFICATE-----\nMIIG\n-----END CERTIFICATE-----\n", KeyPEM: "-----BEGIN PRIVATE KEY-----\nMIIH\n-----END PRIVATE KEY-----\n"}},
			},
			APIs: []*ir.API{api},
		}},
		Services: []*ir.Service{svc, {
			// An https service addressed by IP: no SNI, SAN checked as an IP.
			Name: "vault", Namespace: "prod", Protocol: ir.HTTPS,
			Endpoints: []ir.Endpoint{{Host: "10.9.0.1", Port: 8200}},
			TLS:       &ir.UpstreamTLS{CAPEM: "-----BEGIN CERTIFICATE-----\nMIID\n-----END CERTIFICATE-----\n", CertPEM: "-----BEGIN CERTIFICATE-----\nMIIE\n-----END CERTIFICATE-----\n", KeyPEM: "-----BEGIN PRIVATE KEY-----\nMIIF\n-----END PRIVATE KEY-----\n"},
			Source:    src("Service", "vault"),
		}},
		Tracing: &ir.Tracing{
			Provider: ir.TracingProvider{Type: "opentelemetry", Properties: map[string]string{"address": "http://otel-collector:4317"}},
			Sampling: ir.TracingSampling{Client: 100, Random: 10, Overall: 100},
			Labels: []ir.TracingLabel{
				{Name: "env", Type: "literal", Value: "prod"},
				{Name: "region", Type: "environment", Key: "REGION", DefaultValue: "unknown"},
				{Name: "tenant", Type: "requestHeader", Key: "x-tenant"},
			},
			Source: src("Configuration", "tracing"),
		},
	}
}

// goCases are the hand-built golden cases (config-dir cases live in
// testdata/in).
var goCases = map[string]func() *ir.Snapshot{
	"go_basic":  basicSnapshot,
	"go_tls":    tlsSnapshot,
	"go_shared": sharedSnapshot,
	// The benchmark's config, small: rule expressions repeated across APIs.
	"go_bench_3x2": func() *ir.Snapshot { return translatetest.BigSnapshot(3, 2) },
}

// sharedSnapshot is made of repeats, the case the translator builds once
// and shares (intern.go): two APIs on one listener with the same rules,
// API policies enabled on every route, a service policy with rules reached
// from both APIs, one timeout and retry policy everywhere, a weighted split
// by destination path (runtime fractions, which must not leak into the
// shared matches) next to a plain weighted split, and a second listener
// with the same base path.
func sharedSnapshot() *ir.Snapshot {
	svc := func(name string, ip string, pols ...*ir.Policy) *ir.Service {
		return &ir.Service{Name: name, Namespace: "default", Protocol: ir.HTTP,
			Endpoints: []ir.Endpoint{{Host: ip, Port: 8080}}, Policies: pols, Source: src("Service", name)}
	}
	shared := svc("shared", "10.1.0.1", &ir.Policy{Name: testPolicyName, Binding: "default/shared-cors", Order: 20,
		Config: json.RawMessage(`{}`), Rules: []ir.Rule{{Methods: ir.MustRegexp("DELETE")}}, Source: src("PolicyBinding", "shared-cors")})
	blue, green := svc("blue", "10.1.0.2"), svc("green", "10.1.0.3")
	api := func(name, base string) *ir.API {
		a := &ir.API{Name: name, Namespace: "default", BasePath: base, Source: src("ApiInstance", name),
			Policies: []*ir.Policy{{Name: testPolicyName, Binding: "default/" + name + "#policies[0]", Order: 50,
				Config: json.RawMessage(`{}`), Source: src("ApiInstance", name)}}}
		for i, p := range []string{"/a(/.*)?", "/b/([0-9]+)", "(/.*)"} {
			a.Routes = append(a.Routes, &ir.Route{
				Name:         fmt.Sprintf("r%d", i),
				Rules:        []ir.Rule{{Path: ir.MustRegexp(p), Methods: ir.MustRegexp("GET|DELETE")}},
				Destinations: []ir.Destination{{Service: "default/shared", Weight: 100}},
				Retry:        ir.RetryPolicy{Attempts: 1},
				Source:       src("ApiInstance", name),
			})
		}
		a.Routes = append(a.Routes,
			&ir.Route{Name: "split-paths", Rules: []ir.Rule{{Path: ir.MustRegexp("/c(/.*)"), Methods: ir.MustRegexp("GET|DELETE")}},
				Destinations: []ir.Destination{{Service: "default/blue", Weight: 70, DestinationPath: "/blue"}, {Service: "default/green", Weight: 30, DestinationPath: "/green"}},
				Source:       src("ApiInstance", name)},
			&ir.Route{Name: "split", Rules: []ir.Rule{{Path: ir.MustRegexp("/c(/.*)"), Methods: ir.MustRegexp("GET|DELETE")}},
				Destinations: []ir.Destination{{Service: "default/blue", Weight: 50}, {Service: "default/green", Weight: 50}},
				Retry:        ir.RetryPolicy{Attempts: 1}, Source: src("ApiInstance", name)})
		return a
	}
	return &ir.Snapshot{
		Version: 1,
		Listeners: []*ir.Listener{
			{Name: "http_0.0.0.0_8081", Protocol: ir.HTTP, Host: "0.0.0.0", Port: 8081, APIs: []*ir.API{api("one", "/one"), api("two", "/")}},
			{Name: "http_0.0.0.0_8082", Protocol: ir.HTTP, Host: "0.0.0.0", Port: 8082, APIs: []*ir.API{api("three", "/one")}},
		},
		Services: []*ir.Service{shared, blue, green},
	}
}
