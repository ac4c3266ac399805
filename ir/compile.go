package ir

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flexgw/flexgw/config"
)

// DefaultConnectTimeout applies to services that set no connectTimeout
// (Envoy's default too).
const DefaultConnectTimeout = 5 * time.Second

// CompileOptions parameterise Compile.
type CompileOptions struct {
	// Version is the snapshot's version (the agent increments it per reload).
	Version uint64
	// Now stamps CreatedAt; zero means time.Now().
	Now time.Time
	// CheckPolicy validates one policy's name and config. The policy package
	// sits above ir, so it is injected here; its error text is reported at
	// the policy's config with the file and line. Nil skips the check.
	CheckPolicy func(p *Policy) error
	// CheckSnapshot validates the parts of the snapshot that packages above
	// ir own (log outputs, tracing). It runs on the compiled snapshot even
	// when the configuration has other errors, so every problem is
	// reported in one list; it must only read. Error lines of the form
	// "FILE:LINE: rest" keep their place in the sorted list.
	CheckSnapshot func(s *Snapshot) error
	// Shape applies the config-shaping policies (TLS, timeouts, circuit
	// breakers; policy.Shape) to a snapshot that compiled cleanly, before
	// Compile returns it: the only change a snapshot ever sees. Its error
	// is returned as is.
	Shape func(s *Snapshot) error
	// Warnings lists the problems of a valid snapshot (policy.Warnings);
	// Compile stores them in Snapshot.Warnings.
	Warnings func(s *Snapshot) []string
}

// LoadDir reads, validates and compiles the configuration directory dir.
// Every problem is reported at once as a config.ErrorList.
func LoadDir(dir string, opts CompileOptions) (*Snapshot, error) {
	set, err := config.LoadDir(dir)
	return compileLoaded(set, err, opts)
}

// LoadFiles is LoadDir for YAML documents that come from elsewhere (the
// Kubernetes source gives one file per object).
func LoadFiles(files []config.File, opts CompileOptions) (*Snapshot, error) {
	set, err := config.Parse(files, config.Options{})
	return compileLoaded(set, err, opts)
}

func compileLoaded(set *config.Set, err error, opts CompileOptions) (*Snapshot, error) {
	if set == nil {
		return nil, err
	}
	// Compile even an invalid set, so policy config problems are reported
	// together with the structural ones instead of one round later.
	snap, cerr := Compile(set, opts)
	if err == nil {
		return snap, cerr
	}
	var list, more config.ErrorList
	if !errors.As(err, &list) {
		return nil, err
	}
	if errors.As(cerr, &more) {
		list = append(list, more...)
	}
	return nil, list.Err()
}

// Compile turns a validated configuration set into an immutable snapshot:
// compiled, checked and shaped. snapshot.Options gives the options every
// caller that wants the snapshot flexgw serves must use.
// Errors (policy checks) are returned as a config.ErrorList.
func Compile(set *config.Set, opts CompileOptions) (*Snapshot, error) {
	c := &compiler{set: set, opts: opts, services: map[string]*Service{}}
	snap := c.compile()
	if opts.CheckSnapshot != nil {
		c.external(opts.CheckSnapshot(snap))
	}
	if err := c.errs.Err(); err != nil {
		return nil, err
	}
	snap.Version = opts.Version
	snap.CreatedAt = opts.Now
	if snap.CreatedAt.IsZero() {
		snap.CreatedAt = time.Now()
	}
	snap.Hash = hashSnapshot(snap)
	// Shaping rewrites the snapshot, so it runs only on a configuration
	// that compiled cleanly, and here, before anyone holds the snapshot.
	if opts.Shape != nil {
		if err := opts.Shape(snap); err != nil {
			return nil, err
		}
	}
	if opts.Warnings != nil {
		snap.Warnings = opts.Warnings(snap)
	}
	return snap, nil
}

var locatedLine = regexp.MustCompile(`^(.+?):(\d+): (.*)$`)

// external adds the errors of a check outside ir to the list, one per line.
func (c *compiler) external(err error) {
	if err == nil {
		return
	}
	var list config.ErrorList
	if errors.As(err, &list) {
		c.errs = append(c.errs, list...)
		return
	}
	for _, line := range strings.Split(strings.TrimSpace(err.Error()), "\n") {
		if m := locatedLine.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[2])
			c.errs = append(c.errs, &config.Error{File: m[1], Line: n, Reason: m[3]})
			continue
		}
		c.errs = append(c.errs, &config.Error{Reason: line})
	}
}

type compiler struct {
	set      *config.Set
	opts     CompileOptions
	errs     config.ErrorList
	services map[string]*Service
	// regexps shares one compiled expression among the rules that write
	// the same one (a Regexp is immutable): a config with thousands of
	// routes typically has a handful of distinct method and path patterns.
	regexps map[string]*Regexp
}

func (c *compiler) compile() *Snapshot {
	snap := &Snapshot{Listeners: []*Listener{}, Services: []*Service{}}
	for _, s := range c.set.Services {
		svc := c.service(s.Name, s.Namespace, s.Upstream, source(&s.Meta, s.Line))
		c.add(snap, svc)
	}
	var apis []*API
	apiByKey := map[string]*API{}
	listeners := map[string]*Listener{}
	for _, a := range c.set.APIs {
		api := c.api(a, snap)
		apis = append(apis, api)
		apiByKey[api.Key()] = api
		l := listenerFor(listeners, a.Address)
		l.APIs = append(l.APIs, api)
	}
	// Resource-model routes, in binding order then file order.
	var routes []*config.PolicyBinding
	for _, b := range c.set.Bindings {
		if b.IsRoute() {
			routes = append(routes, b)
		}
	}
	sort.SliceStable(routes, func(i, j int) bool { return routes[i].Policy.Order < routes[j].Policy.Order })
	for _, b := range routes {
		api := apiByKey[b.TargetRef.Key()]
		if api == nil {
			continue
		}
		api.Routes = append(api.Routes, c.bindingRoute(b))
	}
	// Request policies bound by PolicyBinding.
	for _, b := range c.set.Bindings {
		if b.IsRoute() {
			continue
		}
		p := c.policy(&b.Policy, b.Key(), source(&b.Meta, b.Line), &b.Meta)
		if b.Selector != nil {
			// An automated policy: one copy per selected API (each API's
			// chain owns its policies; the shaping step may adjust them).
			for _, api := range apis {
				if b.TargetRef.Namespace != "" && b.TargetRef.Namespace != api.Namespace {
					continue
				}
				if b.Selector.Matches(api.Labels) {
					cp := *p
					api.Policies = append(api.Policies, &cp)
				}
			}
			continue
		}
		switch b.TargetRef.Kind {
		case config.KindApiInstance:
			if api := apiByKey[b.TargetRef.Key()]; api != nil {
				api.Policies = append(api.Policies, p)
			}
		case config.KindService:
			if svc := c.services[b.TargetRef.Key()]; svc != nil {
				svc.Policies = append(svc.Policies, p)
			}
		}
	}
	for _, api := range apis {
		sortPolicies(api.Policies)
	}
	for _, svc := range snap.Services {
		sortPolicies(svc.Policies)
	}
	// Service policies also apply to every route reaching the service.
	for _, api := range apis {
		for _, r := range api.Routes {
			seen := map[*Policy]bool{}
			for _, d := range r.Destinations {
				if svc := c.services[d.Service]; svc != nil {
					for _, p := range svc.Policies {
						if !seen[p] {
							seen[p] = true
							r.Policies = append(r.Policies, p)
						}
					}
				}
			}
			sortPolicies(r.Policies)
		}
	}

	for _, l := range listeners {
		sort.SliceStable(l.APIs, func(i, j int) bool {
			a, b := l.APIs[i], l.APIs[j]
			if len(a.BasePath) != len(b.BasePath) {
				return len(a.BasePath) > len(b.BasePath)
			}
			return a.BasePath < b.BasePath
		})
		snap.Listeners = append(snap.Listeners, l)
	}
	sort.Slice(snap.Listeners, func(i, j int) bool {
		a, b := snap.Listeners[i], snap.Listeners[j]
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.Host < b.Host
	})
	sort.SliceStable(snap.Services, func(i, j int) bool { return snap.Services[i].Key() < snap.Services[j].Key() })

	for _, cfg := range c.set.Configurations {
		c.configuration(snap, cfg)
	}
	return snap
}

// defaults applies Configuration's gateway-wide timeouts and circuit
// breaker to every listener, route and service; the policies that
// override them per API or Service (response-timeout-flex,
// circuit-breaker-flex) are applied later by the shaping step and win.
func (c *compiler) defaults(snap *Snapshot, cfg *config.Configuration) {
	if t := cfg.Timeouts; t != nil {
		for _, l := range snap.Listeners {
			l.StreamIdleTimeout = t.StreamIdle
			if t.UpstreamResponse == 0 {
				continue
			}
			for _, a := range l.APIs {
				for _, r := range a.Routes {
					if r.Timeout == 0 { // a route's own timeout extension wins
						r.Timeout = t.UpstreamResponse
					}
				}
			}
		}
		for _, svc := range snap.Services {
			svc.IdleTimeout = t.UpstreamConnectionIdle
		}
	}
	if cb := cfg.CircuitBreaker; cb != nil {
		for _, svc := range snap.Services {
			svc.CircuitBreaker = &CircuitBreaker{
				MaxConnections: cb.MaxConnections, MaxPendingRequests: cb.MaxPendingRequests,
				MaxRequests: cb.MaxRequests, MaxRetries: cb.MaxRetries, MaxConnectionPools: cb.MaxConnectionPools,
			}
		}
	}
	if d := cfg.DefaultTLS; d != nil && d.OutboundPolicyCalls != nil {
		t := d.OutboundPolicyCalls
		snap.PolicyCallTLS = &UpstreamTLS{
			CAPEM: t.TrustedCA, CertPEM: t.Cert, KeyPEM: t.Key, SkipValidation: t.SkipValidation,
			MinVersion: t.MinVersion, MaxVersion: t.MaxVersion, ALPN: t.ALPN, Ciphers: t.Ciphers,
		}
	}
}

func (c *compiler) add(snap *Snapshot, svc *Service) {
	c.services[svc.Key()] = svc
	snap.Services = append(snap.Services, svc)
}

func source(m *config.Meta, line int) Source {
	return Source{File: m.File, Line: line, Kind: m.Kind, Name: m.Key()}
}

func listenerFor(ls map[string]*Listener, a config.Address) *Listener {
	name := fmt.Sprintf("%s_%s_%d", a.Protocol, a.Host, a.Port)
	l := ls[name]
	if l == nil {
		l = &Listener{Name: name, Protocol: Protocol(a.Protocol), Host: a.Host, Port: a.Port}
		ls[name] = l
	}
	return l
}

func (c *compiler) api(a *config.ApiInstance, snap *Snapshot) *API {
	api := &API{
		Name:      a.Name,
		Namespace: a.Namespace,
		BasePath:  a.Address.Path,
		Routes:    []*Route{},
		Labels:    a.Labels,
		WebSocket: a.WebSocket,
		Source:    source(&a.Meta, a.Line),
	}
	if api.BasePath == "" {
		api.BasePath = "/"
	}
	for _, s := range a.Services {
		// Inline services are private to their API: "<api>/<service>" can
		// never collide with a resource Service (names cannot hold '/').
		svc := c.service(a.Name+"/"+s.Name, a.Namespace, s.Upstream, source(&a.Meta, s.Line))
		c.add(snap, svc)
		routes := s.Routes
		if len(routes) == 0 {
			routes = []*config.Route{{Line: s.Line}} // catch-all
		}
		for i, r := range routes {
			ir := c.route(r, fmt.Sprintf("%s-%d", s.Name, i), &a.Meta)
			ir.Destinations = []Destination{{Service: svc.Key(), Weight: 100}}
			api.Routes = append(api.Routes, ir)
		}
	}
	for i, p := range a.Policies {
		if p.Ref.Name == config.PolicyRoute || p.Ref.Name == config.PolicyRouteWeighted {
			continue
		}
		api.Policies = append(api.Policies, c.policy(p, fmt.Sprintf("%s#policies[%d]", a.Key(), i), source(&a.Meta, p.Line), &a.Meta))
	}
	return api
}

func (c *compiler) route(r *config.Route, name string, m *config.Meta) *Route {
	out := &Route{
		Name:            name,
		Rules:           c.rules(r.Rules, m),
		DestinationPath: r.DestinationPath,
		Timeout:         r.Timeout,
		Retry:           RetryPolicy{Attempts: r.Retries},
		WebSocket:       r.WebSocket,
		Headers:         headerFilters(r.RequestHeaders, r.ResponseHeaders),
		HostRewrite:     r.HostRewrite,
		PreserveHost:    r.PreserveHost,
		Source:          source(m, r.Line),
	}
	for _, m := range r.Mirrors {
		out.Mirrors = append(out.Mirrors, Mirror{Service: m.Key(), PerMillion: uint32(m.Percent * 10_000)})
	}
	if rd := r.Redirect; rd != nil {
		out.Redirect = &Redirect{Scheme: rd.Scheme, Host: rd.Host, Port: rd.Port, RewritePath: rd.RewritePath, Path: rd.Path, StatusCode: rd.StatusCode}
	}
	if dr := r.DirectResponse; dr != nil {
		out.DirectResponse = &DirectResponse{Status: dr.Status, Body: dr.Body}
	}
	return out
}

// headerFilters carries a route's requestHeaders/responseHeaders
// extensions into the IR; nil when it has neither.
func headerFilters(req, resp *config.HeaderMutation) *HeaderFilters {
	conv := func(m *config.HeaderMutation) *HeaderMutation {
		if m == nil || len(m.Set)+len(m.Add)+len(m.Remove) == 0 {
			return nil
		}
		out := &HeaderMutation{Remove: m.Remove}
		for _, v := range m.Set {
			out.Set = append(out.Set, HeaderValue(v))
		}
		for _, v := range m.Add {
			out.Add = append(out.Add, HeaderValue(v))
		}
		return out
	}
	f := &HeaderFilters{Request: conv(req), Response: conv(resp)}
	if f.Request == nil && f.Response == nil {
		return nil
	}
	return f
}

func (c *compiler) bindingRoute(b *config.PolicyBinding) *Route {
	r := c.route(b.Route, b.Name, &b.Meta)
	r.Destinations = []Destination{}
	common := true
	for _, d := range b.Route.Destinations {
		if dr := d.DirectResponse; dr != nil {
			r.Destinations = append(r.Destinations, Destination{Weight: uint32(d.Weight), DirectResponse: &DirectResponse{Status: dr.Status, Body: dr.Body}})
			continue
		}
		r.Destinations = append(r.Destinations, Destination{Service: d.Ref.Key(), Weight: uint32(d.Weight), DestinationPath: d.DestinationPath})
		common = common && d.DestinationPath == b.Route.Destinations[0].DestinationPath
	}
	// One path for every destination reads better as the route's own.
	if common && len(r.Destinations) > 0 && r.DestinationPath == "" {
		r.DestinationPath = r.Destinations[0].DestinationPath
		for i := range r.Destinations {
			r.Destinations[i].DestinationPath = ""
		}
	}
	return r
}

func (c *compiler) rules(in []*config.Rule, m *config.Meta) []Rule {
	var out []Rule
	for _, r := range in {
		var ir Rule
		re := func(src string) *Regexp {
			if src == "" {
				return nil
			}
			if x, ok := c.regexps[src]; ok {
				return x
			}
			x, err := CompileRegexp(src)
			if err != nil { // config already validated; keep the guard
				c.errs = append(c.errs, &config.Error{File: m.File, Line: r.Line, Kind: m.Kind, Name: m.Name, Field: "rules", Reason: err.Error()})
				return nil
			}
			if c.regexps == nil {
				c.regexps = map[string]*Regexp{}
			}
			c.regexps[src] = x
			return x
		}
		ir.Path, ir.Methods, ir.Host = re(r.Path), re(r.Methods), re(r.Host)
		for _, h := range r.Headers {
			if v := re(h.Value); v != nil {
				ir.Headers = append(ir.Headers, HeaderMatch{Name: h.Name, Value: v})
			}
		}
		for _, q := range r.Query {
			if v := re(q.Value); v != nil {
				ir.Query = append(ir.Query, QueryMatch{Name: q.Name, Value: v})
			}
		}
		out = append(out, ir)
	}
	return out
}

func (c *compiler) service(name, ns string, u config.Upstream, src Source) *Service {
	svc := &Service{
		Name:           name,
		Namespace:      ns,
		Protocol:       Protocol(u.Address.Protocol),
		HTTP2:          u.HTTP2,
		BasePath:       u.Address.Path,
		LB:             LBPolicy(u.LoadBalancer),
		ConnectTimeout: u.ConnectTimeout,
		Source:         src,
	}
	if svc.ConnectTimeout == 0 {
		svc.ConnectTimeout = DefaultConnectTimeout
	}
	if svc.LB == "" {
		svc.LB = RoundRobin
	}
	seen := map[string]bool{}
	for _, a := range append([]config.Address{u.Address}, u.Endpoints...) {
		ep := Endpoint{Host: a.Host, Port: a.Port}
		if a.Host == "" || seen[ep.Address()] {
			continue
		}
		seen[ep.Address()] = true
		svc.Endpoints = append(svc.Endpoints, ep)
	}
	if svc.Protocol == HTTPS {
		svc.TLS = &UpstreamTLS{}
		if net.ParseIP(u.Address.Host) == nil {
			svc.TLS.SNI = u.Address.Host
		}
	}
	if h := u.HealthCheck; h != nil {
		svc.HealthCheck = &HealthCheck{
			Path: h.Path, Interval: h.Interval, Timeout: h.Timeout,
			HealthyThreshold: h.HealthyThreshold, UnhealthyThreshold: h.UnhealthyThreshold,
			ExpectedStatuses: h.ExpectedStatuses,
		}
	}
	if p := u.PassiveHealth; p != nil && p.Enabled {
		svc.Outlier = &OutlierDetection{
			ConsecutiveFailures: p.ConsecutiveFailures,
			BaseEjectionTime:    p.EjectionTime,
			MaxEjectionPercent:  p.MaxEjectionPercent,
		}
	}
	return svc
}

// policy compiles one policy and runs CheckPolicy on it.
func (c *compiler) policy(p *config.Policy, binding string, src Source, m *config.Meta) *Policy {
	out := &Policy{
		Name:    p.Ref.Name,
		Binding: binding,
		Order:   p.Order,
		Rules:   c.rules(p.Rules, m),
		Source:  src,
	}
	if p.Config != nil {
		b, err := json.Marshal(p.Config)
		if err != nil {
			c.errs = append(c.errs, &config.Error{File: m.File, Line: p.ConfigLine, Kind: m.Kind, Name: m.Name, Field: p.Field + ".config", Reason: err.Error()})
		}
		out.Config = b
	}
	if c.opts.CheckPolicy != nil {
		if err := c.opts.CheckPolicy(out); err != nil {
			line := p.ConfigLine
			if line == 0 {
				line = p.Line
			}
			field := p.Field + ".config"
			if p.Ref.Name == "" {
				field = p.Field + ".policyRef.name"
			}
			c.errs = append(c.errs, &config.Error{File: m.File, Line: line, Kind: m.Kind, Name: m.Name, Field: field, Reason: err.Error()})
		}
	}
	return out
}

func sortPolicies(ps []*Policy) {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Order < ps[j].Order })
}

func (c *compiler) configuration(snap *Snapshot, cfg *config.Configuration) {
	if l := cfg.Logging; l != nil {
		lg := &Logging{
			AccessLogOutputs:  l.AccessLogOutputs,
			RuntimeLogOutputs: l.RuntimeLogOutputs,
			RuntimeLogLevel:   l.RuntimeLogLevel,
		}
		for _, o := range l.Outputs {
			lg.Outputs = append(lg.Outputs, LogOutput{Name: o.Name, Type: o.Type, Parameters: o.Parameters, Source: source(&cfg.Meta, o.Line)})
		}
		snap.Logging = lg
	}
	if s := cfg.SharedStorage; s != nil && s.Redis != nil {
		r := s.Redis
		red := &Redis{Address: r.Address, Username: r.Username, Password: r.Password, DB: r.DB}
		if t := r.TLS; t != nil {
			red.TLS = &RedisTLS{
				TrustedCA: t.TrustedCA, CertPEM: t.Cert, KeyPEM: t.Key, KeyPassphrase: t.KeyPassphrase,
				SkipValidation: t.SkipValidation, MinVersion: t.MinVersion, MaxVersion: t.MaxVersion,
				ALPN: t.ALPN, Ciphers: t.Ciphers,
			}
		}
		snap.SharedStorage = &SharedStorage{Redis: red}
	}
	if t := cfg.Tracing; t != nil {
		tr := &Tracing{
			Provider: TracingProvider{Type: t.ProviderType, Properties: t.ProviderProperties},
			Sampling: TracingSampling{Client: t.SamplingClient, Random: t.SamplingRandom, Overall: t.SamplingOverall},
			Source:   source(&cfg.Meta, t.Line),
		}
		for _, l := range t.Labels {
			lb := TracingLabel{Name: l.Name, Type: l.Type, Key: l.KeyName, DefaultValue: l.DefaultValue}
			if l.Type == "literal" {
				lb.Value = l.DefaultValue // Flex writes a literal's value in defaultValue
			}
			tr.Labels = append(tr.Labels, lb)
		}
		snap.Tracing = tr
	}
	c.defaults(snap, cfg)
}

// hashSnapshot hashes the canonical JSON of the snapshot's content (not its
// version or time) plus the secrets JSON leaves out, so a changed password
// or certificate is a changed snapshot.
//
// The JSON is streamed into the hash a listener, an API and a service at a
// time: marshalling a large configuration whole (5 MB for 1,000 APIs) made
// a buffer of that size, and its growth copies, on every reload.
func hashSnapshot(s *Snapshot) string {
	cp := *s
	cp.Version, cp.Hash, cp.CreatedAt = 0, "", time.Time{}
	cp.Listeners, cp.Services = nil, nil
	h := sha256.New()
	enc := json.NewEncoder(h) // each value's JSON ends in a newline
	// plain data: encoding cannot fail
	_ = enc.Encode(&cp)
	for _, l := range s.Listeners {
		lc := *l
		lc.APIs = nil
		_ = enc.Encode(&lc)
		fmt.Fprintf(h, "apis %d\n", len(l.APIs))
		for _, a := range l.APIs {
			_ = enc.Encode(a)
		}
	}
	fmt.Fprintf(h, "services %d\n", len(s.Services))
	for _, svc := range s.Services {
		_ = enc.Encode(svc)
	}
	secret := func(parts ...string) {
		for _, p := range parts {
			fmt.Fprintf(h, "%d:%s", len(p), p)
		}
	}
	for _, l := range s.Listeners {
		if t := l.TLS; t != nil {
			secret(l.Name, t.CertPEM, t.KeyPEM, t.ClientCAPEM)
			for _, c := range t.SNICerts {
				secret(c.CertPEM, c.KeyPEM)
			}
		}
	}
	for _, svc := range s.Services {
		if t := svc.TLS; t != nil {
			secret(svc.Key(), t.CAPEM, t.CertPEM, t.KeyPEM)
		}
	}
	if t := s.PolicyCallTLS; t != nil {
		secret("policy-calls", t.CAPEM, t.CertPEM, t.KeyPEM)
	}
	if s.SharedStorage != nil && s.SharedStorage.Redis != nil {
		r := s.SharedStorage.Redis
		secret("redis", r.Password)
		if t := r.TLS; t != nil {
			secret(t.TrustedCA, t.CertPEM, t.KeyPEM, t.KeyPassphrase)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Summary is a one-line description: "2 APIs, 5 routes, 3 services, 4 policies".
func Summary(s *Snapshot) string {
	apis, routes, policies := 0, 0, 0
	for _, a := range s.APIs() {
		apis++
		routes += len(a.Routes)
		policies += len(a.Policies)
	}
	for _, svc := range s.Services {
		policies += len(svc.Policies)
	}
	return strings.Join([]string{
		plural(apis, "API", "APIs"), plural(routes, "route", "routes"),
		plural(len(s.Services), "service", "services"), plural(policies, "policy", "policies"),
	}, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
