package policy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/flexgw/flexgw/ir"
)

// This file holds the config-shaping policies: tls, tls-outbound,
// response-timeout-flex and circuit-breaker-flex. They change the snapshot
// (listener TLS, service TLS, route timeouts, service circuit breakers)
// instead of wrapping requests, so both data planes implement them with
// their native machinery. Shape applies them; their middleware is a no-op.

// shaping is a Definition whose work happens in Shape.
type shaping struct {
	name     string
	validate func(raw json.RawMessage) error
}

func (s shaping) Name() string                       { return s.name }
func (s shaping) Validate(raw json.RawMessage) error { return s.validate(raw) }

// Build returns a pass-through: Shape already applied the policy.
func (s shaping) Build(Env, *ir.Policy) (Middleware, error) {
	return func(next http.Handler) http.Handler { return next }, nil
}

// IsShaping reports whether name is a config-shaping policy, which the
// data plane may leave out of its middleware chain.
func IsShaping(name string) bool {
	switch name {
	case "tls", "tls-outbound", "response-timeout-flex", "circuit-breaker-flex", "idle-timeout-flex", "tracing-flex":
		return true
	}
	return false
}

func init() {
	Register(shaping{"tls", func(raw json.RawMessage) error { _, err := parseServerTLS(raw); return err }})
	Register(shaping{"tls-outbound", func(raw json.RawMessage) error { _, err := parseUpstreamTLS(raw); return err }})
	Register(shaping{"response-timeout-flex", func(raw json.RawMessage) error { _, err := parseTimeout(raw); return err }})
	Register(shaping{"circuit-breaker-flex", func(raw json.RawMessage) error { _, err := parseCircuitBreaker(raw); return err }})
}

type certPair struct {
	Key string `json:"key"`
	Crt string `json:"crt"`
}

// tlsConfig is the tls policy's configuration (inbound TLS and mTLS).
type tlsConfig struct {
	RequireClientCertificate bool      `json:"requireClientCertificate"`
	TrustedCA                string    `json:"trustedCA"`
	Certificate              *certPair `json:"certificate"`
	// SNICertificates is a flexgw extension: more certificates on the
	// listener, each served to clients asking (SNI) for a name it covers.
	// The Kubernetes source fills it from Ingress spec.tls and Gateway
	// HTTPS listeners sharing a port.
	SNICertificates []certPair `json:"sniCertificates"`
	ALPN            []string   `json:"alpn"`
	MinVersion      string     `json:"minversion"`
	MaxVersion      string     `json:"maxversion"`
	Ciphers         []string   `json:"ciphers"`
}

// tlsOutboundConfig is tls-outbound's configuration; SNI is a flexgw field.
type tlsOutboundConfig struct {
	SkipValidation bool      `json:"skipValidation"`
	TrustedCA      string    `json:"trustedCA"`
	Certificate    *certPair `json:"certificate"`
	ALPN           []string  `json:"alpn"`
	MinVersion     string    `json:"minversion"`
	MaxVersion     string    `json:"maxversion"`
	Ciphers        []string  `json:"ciphers"`
	SNI            string    `json:"sni"`
}

func checkVersions(minV, maxV string) error {
	order := map[string]int{"": 0, "1.0": 1, "1.1": 2, "1.2": 3, "1.3": 4}
	mi, ok1 := order[minV]
	ma, ok2 := order[maxV]
	if !ok1 {
		return fieldErr("minversion", "must be 1.0, 1.1, 1.2 or 1.3, got %q", minV)
	}
	if !ok2 {
		return fieldErr("maxversion", "must be 1.0, 1.1, 1.2 or 1.3, got %q", maxV)
	}
	if mi > 0 && ma > 0 && mi > ma {
		return fieldErr("minversion", "%s is above maxversion %s", minV, maxV)
	}
	return nil
}

func checkCiphers(ciphers []string) error {
	for i, c := range ciphers {
		if err := ir.CheckCipher(c); err != nil {
			return fieldErr(fmt.Sprintf("ciphers[%d]", i), "%v", err)
		}
	}
	return nil
}

func checkPair(c *certPair) error {
	if c == nil {
		return nil
	}
	if c.Crt == "" || c.Key == "" {
		return fieldErr("certificate", "both crt and key are required")
	}
	if _, err := tls.X509KeyPair([]byte(c.Crt), []byte(c.Key)); err != nil {
		return fieldWrap("certificate", err)
	}
	return nil
}

func checkCA(field, pemText string) error {
	if pemText == "" {
		return nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(pemText)) {
		return fieldErr(field, "no PEM certificate found")
	}
	return nil
}

func parseServerTLS(raw json.RawMessage) (*ir.ServerTLS, error) {
	var c tlsConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	if c.Certificate == nil {
		return nil, fieldErr("certificate", "required: a listener cannot serve TLS without a certificate")
	}
	if err := checkPair(c.Certificate); err != nil {
		return nil, err
	}
	var more []ir.CertKey
	for i := range c.SNICertificates {
		if err := checkPair(&c.SNICertificates[i]); err != nil {
			fe := err.(*FieldError) // checkPair's errors name "certificate"
			return nil, &FieldError{Field: fmt.Sprintf("sniCertificates[%d]", i), Reason: fe.Reason, Err: fe.Err}
		}
		more = append(more, ir.CertKey{CertPEM: c.SNICertificates[i].Crt, KeyPEM: c.SNICertificates[i].Key})
	}
	if c.RequireClientCertificate && c.TrustedCA == "" {
		return nil, fieldErr("trustedCA", "required when requireClientCertificate is true")
	}
	if err := errors.Join(checkCA("trustedCA", c.TrustedCA), checkVersions(c.MinVersion, c.MaxVersion), checkCiphers(c.Ciphers)); err != nil {
		return nil, err
	}
	alpn := c.ALPN
	if len(alpn) == 0 {
		alpn = []string{"h2", "http/1.1"}
	}
	return &ir.ServerTLS{
		CertPEM: c.Certificate.Crt, KeyPEM: c.Certificate.Key, SNICerts: more,
		ClientCAPEM: c.TrustedCA, RequireClientCert: c.RequireClientCertificate,
		MinVersion: orDefault(c.MinVersion, "1.2"), MaxVersion: orDefault(c.MaxVersion, "1.3"),
		ALPN: alpn, Ciphers: c.Ciphers,
	}, nil
}

func parseUpstreamTLS(raw json.RawMessage) (*ir.UpstreamTLS, error) {
	var c tlsOutboundConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	if err := errors.Join(checkPair(c.Certificate), checkCA("trustedCA", c.TrustedCA), checkVersions(c.MinVersion, c.MaxVersion), checkCiphers(c.Ciphers)); err != nil {
		return nil, err
	}
	t := &ir.UpstreamTLS{
		SNI: c.SNI, CAPEM: c.TrustedCA, SkipValidation: c.SkipValidation,
		MinVersion: orDefault(c.MinVersion, "1.2"), MaxVersion: orDefault(c.MaxVersion, "1.3"), ALPN: c.ALPN,
		Ciphers: c.Ciphers,
	}
	if c.Certificate != nil {
		t.CertPEM, t.KeyPEM = c.Certificate.Crt, c.Certificate.Key
	}
	return t, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// timeoutConfig is response-timeout-flex's configuration: seconds.
type timeoutConfig struct {
	Timeout *float64 `json:"timeout"`
}

func parseTimeout(raw json.RawMessage) (time.Duration, error) {
	var c timeoutConfig
	if err := decode(raw, &c); err != nil {
		return 0, err
	}
	if c.Timeout == nil {
		return 0, fieldErr("timeout", "required (seconds)")
	}
	if *c.Timeout <= 0 {
		return 0, fieldErr("timeout", "must be > 0 seconds, got %v", *c.Timeout)
	}
	return time.Duration(*c.Timeout * float64(time.Second)), nil
}

// circuitBreakerConfig is circuit-breaker-flex's configuration.
type circuitBreakerConfig struct {
	Thresholds *struct {
		MaxConnections     *int `json:"maxConnections"`
		MaxPendingRequests *int `json:"maxPendingRequests"`
		MaxRequests        *int `json:"maxRequests"`
		MaxRetries         *int `json:"maxRetries"`
		MaxConnectionPools *int `json:"maxConnectionPools"`
	} `json:"thresholds"`
}

func parseCircuitBreaker(raw json.RawMessage) (*ir.CircuitBreaker, error) {
	var c circuitBreakerConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	if c.Thresholds == nil {
		return nil, fieldErr("thresholds", "required")
	}
	cb := &ir.CircuitBreaker{}
	for _, f := range []struct {
		name string
		v    *int
		out  *int
	}{
		{"maxConnections", c.Thresholds.MaxConnections, &cb.MaxConnections},
		{"maxPendingRequests", c.Thresholds.MaxPendingRequests, &cb.MaxPendingRequests},
		{"maxRequests", c.Thresholds.MaxRequests, &cb.MaxRequests},
		{"maxRetries", c.Thresholds.MaxRetries, &cb.MaxRetries},
		{"maxConnectionPools", c.Thresholds.MaxConnectionPools, new(int)},
	} {
		if f.v == nil {
			continue
		}
		if *f.v <= 0 {
			return nil, fieldErr("thresholds."+f.name, "must be > 0, got %d", *f.v)
		}
		*f.out = *f.v
	}
	return cb, nil
}

// routeShapers are the config-shaping policies that, bound to an API, set
// one field of each of its routes: each reads its configuration once and
// returns the setter.
var routeShapers = map[string]func(json.RawMessage) (func(*ir.Route), error){
	"response-timeout-flex": func(raw json.RawMessage) (func(*ir.Route), error) {
		d, err := parseTimeout(raw)
		return func(r *ir.Route) { r.Timeout = d }, err
	},
	"tracing-flex": func(raw json.RawMessage) (func(*ir.Route), error) {
		o, err := parseTracingPolicy(raw)
		return func(r *ir.Route) { r.Tracing = o }, err
	},
	"stream-idle-timeout-flex": func(raw json.RawMessage) (func(*ir.Route), error) {
		d, err := parseStreamIdle(raw)
		return func(r *ir.Route) { r.StreamIdleTimeout = d }, err
	},
}

// Shape applies the config-shaping policies of s to s itself, and moves
// every cors-flex binding to CORSOrder (first in the chain): `tls` on an
// API sets its listener's TLS, `tls-outbound` and `circuit-breaker-flex`
// set the TLS and circuit breaker of the service they are bound to (or of
// every service an API's routes reach), `response-timeout-flex` sets the
// timeout of the API's routes (or of the routes reaching the service). The
// lead runs it after compile and before the snapshot is published; it
// returns an error naming the policy binding and source when a config is
// invalid or two APIs on one listener ask for different TLS.
func Shape(s *ir.Snapshot) error {
	var errs []error
	fail := func(p *ir.Policy, err error) {
		errs = append(errs, fmt.Errorf("%s: policy %q (%s): %w", p.Source, p.Name, p.Binding, err))
	}
	// cors-flex runs first whatever its order (Flex), on both data planes,
	// which sort by Order.
	firstCORS := func(ps []*ir.Policy) {
		for _, p := range ps {
			if p.Name == "cors-flex" {
				p.Order = CORSOrder
			}
		}
	}
	for _, svc := range s.Services {
		firstCORS(svc.Policies)
	}
	tlsBy := map[*ir.Listener]*ir.Policy{}
	for _, l := range s.Listeners {
		for _, a := range l.APIs {
			firstCORS(a.Policies)
			for _, r := range a.Routes {
				firstCORS(r.Policies)
			}
		}
		for _, a := range l.APIs {
			for _, p := range a.Policies {
				switch p.Name {
				case "tls":
					t, err := parseServerTLS(p.Config)
					if err != nil {
						fail(p, err)
						continue
					}
					if prev, ok := tlsBy[l]; ok && string(prev.Config) != string(p.Config) {
						fail(p, fmt.Errorf("listener %s already has TLS from %s; APIs sharing an address must share one TLS context", l.Name, prev.Binding))
						continue
					}
					tlsBy[l] = p
					l.TLS = t
				case "tls-outbound", "circuit-breaker-flex", "idle-timeout-flex":
					for _, svc := range servicesOf(s, a.Routes) {
						if err := shapeService(svc, p); err != nil {
							fail(p, err)
						}
					}
				default:
					shape, ok := routeShapers[p.Name]
					if !ok {
						continue
					}
					set, err := shape(p.Config)
					if err != nil {
						fail(p, err)
						continue
					}
					for _, r := range a.Routes {
						set(r)
					}
				}
			}
			// Service-bound timeouts apply to routes reaching the service.
			for _, r := range a.Routes {
				for _, dst := range r.Destinations {
					svc := s.Service(dst.Service)
					if svc == nil {
						continue
					}
					for _, p := range svc.Policies {
						if p.Name != "response-timeout-flex" {
							continue
						}
						d, err := parseTimeout(p.Config)
						if err != nil {
							continue // reported once below
						}
						r.Timeout = d
					}
				}
			}
		}
	}
	// An https address needs a certificate: Flex serves it from the tls
	// policy bound to the API (or to any API sharing the port).
	for _, l := range s.Listeners {
		if l.Protocol != ir.HTTPS || l.TLS != nil {
			continue
		}
		for _, a := range l.APIs {
			errs = append(errs, fmt.Errorf("%s: ApiInstance %q: spec.address is https but no tls policy gives port %d a certificate; bind the tls policy to it (policyRef name: tls, config.certificate.crt and .key) or use http://", a.Source, a.Key(), l.Port))
		}
	}
	for _, svc := range s.Services {
		for _, p := range svc.Policies {
			switch p.Name {
			case "tls-outbound", "circuit-breaker-flex", "idle-timeout-flex":
				if err := shapeService(svc, p); err != nil {
					fail(p, err)
				}
			case "response-timeout-flex":
				if _, err := parseTimeout(p.Config); err != nil {
					fail(p, err)
				}
			case "tls":
				fail(p, errors.New("tls is inbound TLS and binds to an ApiInstance; use tls-outbound for a Service"))
			case "tracing-flex":
				fail(p, errors.New("tracing-flex overrides tracing for an API: bind it to the ApiInstance"))
			}
		}
	}
	return errors.Join(errs...)
}

func shapeService(svc *ir.Service, p *ir.Policy) error {
	switch p.Name {
	case "tls-outbound":
		t, err := parseUpstreamTLS(p.Config)
		if err != nil {
			return err
		}
		svc.TLS = t
	case "circuit-breaker-flex":
		cb, err := parseCircuitBreaker(p.Config)
		if err != nil {
			return err
		}
		svc.CircuitBreaker = cb
	case "idle-timeout-flex":
		d, err := parseUpstreamIdle(p.Config)
		if err != nil {
			return err
		}
		svc.IdleTimeout = d
	}
	return nil
}

func servicesOf(s *ir.Snapshot, routes []*ir.Route) []*ir.Service {
	seen := map[string]bool{}
	var out []*ir.Service
	for _, r := range routes {
		for _, d := range r.Destinations {
			if seen[d.Service] {
				continue
			}
			seen[d.Service] = true
			if svc := s.Service(d.Service); svc != nil {
				out = append(out, svc)
			}
		}
	}
	return out
}

// SecretFields implements Secrets: the private keys of tls and
// tls-outbound; timeouts and circuit breakers hold none.
func (s shaping) SecretFields() []string {
	switch s.name {
	case "tls", "tls-outbound":
		return []string{"certificate.key"}
	}
	return []string{}
}
