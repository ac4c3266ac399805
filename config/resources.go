package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/net/http/httpguts"
)

// Extension field names, shared by resource Services and inline services.
var upstreamFields = []string{"address", "endpoints", "loadBalancer", "http2", "connectTimeout", "healthCheck", "passiveHealth"}

func (d *decoder) apiInstance(spec *yaml.Node) *ApiInstance {
	api := &ApiInstance{Meta: *d.meta}
	d.meta = &api.Meta
	fs := d.fields(spec, "spec", "address", "services", "policies", "websocket")
	if f, ok := fs["websocket"]; ok {
		if v, ok := d.boolean(f.value, "spec.websocket"); ok {
			api.WebSocket = &v
		}
	}
	if f, ok := fs["address"]; ok {
		if s, ok := d.str(f.value, "spec.address"); ok {
			a, err := parseAddress(s)
			if err != nil {
				d.errorf(f.value, "spec.address", "%v", err)
			}
			a.Line = f.value.Line
			api.Address = a
		}
	} else {
		d.errorf(spec, "spec.address", "required (protocol://host:port[/path])")
	}
	for _, p := range d.pairs(fs["services"].value, "spec.services") {
		path := "spec.services." + p.key.Value
		if err := checkName(p.key.Value); err != nil {
			d.errorf(p.key, path, "service name %v", err)
		}
		svc := &InlineService{Name: p.key.Value, Line: p.key.Line}
		sf := d.fields(p.value, path, append(upstreamFields, "routes")...)
		svc.Upstream = d.upstream(p.value, sf, path)
		for i, r := range d.seq(sf["routes"].value, path+".routes") {
			svc.Routes = append(svc.Routes, d.inlineRoute(r, fmt.Sprintf("%s.routes[%d]", path, i)))
		}
		api.Services = append(api.Services, svc)
	}
	for i, n := range d.seq(fs["policies"].value, "spec.policies") {
		path := fmt.Sprintf("spec.policies[%d]", i)
		pf := d.fields(n, path, "policyRef", "config", "rules", "order")
		pol := &Policy{Line: n.Line, Field: path, Order: DefaultPolicyOrder}
		d.policyBody(&pol.Ref, pol, pf, path, n)
		if f, ok := pf["order"]; ok {
			pol.Order, _ = d.integer(f.value, path+".order")
		}
		api.Policies = append(api.Policies, pol)
	}
	return api
}

// policyBody decodes the fields a PolicyBinding spec and an inline policy
// share: policyRef, config, rules.
func (d *decoder) policyBody(ref *Ref, pol *Policy, fs map[string]field, path string, n *yaml.Node) {
	if f, ok := fs["policyRef"]; ok {
		rf := d.fields(f.value, path+".policyRef", "kind", "name", "namespace")
		ref.Line = f.value.Line
		// Flex names its policies as Extension resources; every flexgw
		// policy is built in, so the kind only has to say that.
		if kf, ok := rf["kind"]; ok && !isNull(kf.value) {
			if k, ok := d.str(kf.value, path+".policyRef.kind"); ok {
				if k != KindExtension {
					d.errorf(kf.value, path+".policyRef.kind", "must be %s, got %q", KindExtension, k)
				} else {
					ref.Kind = k
				}
			}
		}
		if nf, ok := rf["name"]; ok {
			ref.Name, _ = d.str(nf.value, path+".policyRef.name")
		}
		if ref.Name == "" {
			d.errorf(f.value, path+".policyRef.name", "required")
		}
		if nf, ok := rf["namespace"]; ok {
			ref.Namespace, _ = d.str(nf.value, path+".policyRef.namespace")
		}
	} else {
		d.errorf(n, path+".policyRef", "required")
	}
	if f, ok := fs["config"]; ok {
		pol.ConfigLine = f.key.Line
		if pol.Ref.Name != PolicyRoute && pol.Ref.Name != PolicyRouteWeighted {
			pol.Config, _ = d.value(f.value, path+".config")
		}
	}
	pol.Rules = d.rules(fs["rules"].value, path+".rules", pol.Ref.Name == PolicyRoute || pol.Ref.Name == PolicyRouteWeighted)
}

func (d *decoder) inlineRoute(n *yaml.Node, path string) *Route {
	r := &Route{Line: n.Line}
	fs := d.fields(n, path, "rules", "config")
	r.Rules = d.rules(fs["rules"].value, path+".rules", true)
	cf := d.fields(fs["config"].value, path+".config", "destinationPath", "timeout", "retries", "websocket", "requestHeaders", "responseHeaders", "hostRewrite")
	d.routeOptions(r, cf, path+".config")
	return r
}

// routeOptions decodes destinationPath and the timeout, retries and
// websocket extensions.
func (d *decoder) routeOptions(r *Route, cf map[string]field, path string) {
	if f, ok := cf["websocket"]; ok {
		if v, ok := d.boolean(f.value, path+".websocket"); ok {
			r.WebSocket = &v
		}
	}
	if f, ok := cf["destinationPath"]; ok {
		r.DestinationPath = d.destinationPath(f.value, path+".destinationPath")
	}
	if f, ok := cf["timeout"]; ok {
		r.Timeout, _ = d.duration(f.value, path+".timeout")
	}
	d.intIn(cf, path, "retries", 0, 10, &r.Retries, "")
	if f, ok := cf["requestHeaders"]; ok {
		r.RequestHeaders = d.headerMutation(f.value, path+".requestHeaders")
	}
	if f, ok := cf["responseHeaders"]; ok {
		r.ResponseHeaders = d.headerMutation(f.value, path+".responseHeaders")
	}
	if f, ok := cf["preserveHost"]; ok {
		r.PreserveHost, _ = d.boolean(f.value, path+".preserveHost")
	}
	if f, ok := cf["hostRewrite"]; ok {
		if h, ok := d.str(f.value, path+".hostRewrite"); ok {
			if err := checkHost(h); err != nil {
				d.errorf(f.value, path+".hostRewrite", "%v", err)
			} else {
				r.HostRewrite = h
			}
		}
	}
	if f, ok := cf["redirect"]; ok {
		r.Redirect = d.redirect(f.value, path+".redirect")
	}
	if f, ok := cf["mirrors"]; ok {
		for i, n := range d.seq(f.value, path+".mirrors") {
			r.Mirrors = append(r.Mirrors, d.mirror(n, fmt.Sprintf("%s.mirrors[%d]", path, i)))
		}
	}
	if f, ok := cf["directResponse"]; ok {
		r.DirectResponse = d.directResponse(f.value, path+".directResponse")
	}
}

// mirror decodes one mirrors entry: {name, namespace, percent}.
func (d *decoder) mirror(n *yaml.Node, path string) Mirror {
	m := Mirror{Ref: Ref{Kind: KindService, Namespace: d.meta.Namespace, Line: n.Line}, Percent: 100}
	fs := d.fields(n, path, "name", "namespace", "percent")
	if f, ok := fs["name"]; ok {
		m.Name, _ = d.str(f.value, path+".name")
	}
	if m.Name == "" {
		d.errorf(n, path+".name", "required")
	}
	if f, ok := fs["namespace"]; ok && !isNull(f.value) {
		m.Namespace, _ = d.str(f.value, path+".namespace")
	}
	if f, ok := fs["percent"]; ok {
		if s, ok := d.scalar(f.value, path+".percent"); ok {
			p, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil || p < 0 || p > 100 {
				d.errorf(f.value, path+".percent", "must be a number from 0 to 100, got %q", s)
			} else {
				m.Percent = p
			}
		}
	}
	return m
}

// checkHost says why h cannot be a Host header or redirect host: empty,
// or holding what a host name never does.
func checkHost(h string) error {
	if h == "" || strings.ContainsAny(h, "/?#@ \t\r\n") || !httpguts.ValidHeaderFieldValue(h) {
		return fmt.Errorf("%q is not a host name", h)
	}
	return nil
}

// redirect decodes the redirect extension:
// {scheme, host, port, path, statusCode}.
func (d *decoder) redirect(n *yaml.Node, path string) *Redirect {
	rd := &Redirect{StatusCode: 302}
	fs := d.fields(n, path, "scheme", "host", "port", "path", "statusCode")
	if f, ok := fs["scheme"]; ok {
		if v, ok := d.str(f.value, path+".scheme"); ok {
			if v != "http" && v != "https" {
				d.errorf(f.value, path+".scheme", "must be http or https, got %q", v)
			}
			rd.Scheme = v
		}
	}
	if f, ok := fs["host"]; ok {
		if v, ok := d.str(f.value, path+".host"); ok {
			if err := checkHost(v); err != nil {
				d.errorf(f.value, path+".host", "%v", err)
			}
			rd.Host = v
		}
	}
	d.intIn(fs, path, "port", 1, 65535, &rd.Port, "")
	if f, ok := fs["path"]; ok {
		if v, ok := d.str(f.value, path+".path"); ok {
			switch {
			case !strings.HasPrefix(v, "/"):
				d.errorf(f.value, path+".path", "%q must start with '/'", v)
			case strings.ContainsAny(v, "?#"):
				d.errorf(f.value, path+".path", "%q must not hold a query or fragment", v)
			default:
				rd.RewritePath, rd.Path = true, strings.TrimRight(v, "/")
			}
		}
	}
	if f, ok := fs["statusCode"]; ok {
		if v, ok := d.integer(f.value, path+".statusCode"); ok {
			if v != 301 && v != 302 && v != 303 && v != 307 && v != 308 {
				d.errorf(f.value, path+".statusCode", "must be 301, 302, 303, 307 or 308, got %d", v)
			}
			rd.StatusCode = v
		}
	}
	return rd
}

// directResponse decodes the directResponse extension: {status, body}.
func (d *decoder) directResponse(n *yaml.Node, path string) *DirectResponse {
	dr := &DirectResponse{}
	fs := d.fields(n, path, "status", "body")
	if _, ok := fs["status"]; !ok {
		d.errorf(n, path+".status", "required")
	}
	d.intIn(fs, path, "status", 200, 599, &dr.Status, "")
	if f, ok := fs["body"]; ok {
		dr.Body, _ = d.str(f.value, path+".body")
	}
	return dr
}

// framingHeaders are the headers a route may not change: they frame the
// message or name its host, and the proxy owns them (Envoy refuses them
// in headers_to_add/remove as well).
var framingHeaders = map[string]bool{
	"host": true, "content-length": true, "transfer-encoding": true, "connection": true, "upgrade": true,
	"keep-alive": true, "te": true, "trailer": true, "proxy-connection": true,
}

// CheckRouteHeader says why a route may not set header name to value:
// not a header name or value, or a header the proxy owns.
func CheckRouteHeader(name, value string) error {
	switch {
	case !httpguts.ValidHeaderFieldName(name):
		return fmt.Errorf("%q is not a valid header name", name)
	case framingHeaders[strings.ToLower(name)]:
		return fmt.Errorf("%s cannot be changed by a route: the proxy owns it", name)
	case !httpguts.ValidHeaderFieldValue(value):
		return fmt.Errorf("the value of %s is not a valid header value (control characters)", name)
	}
	return nil
}

// headerMutation decodes a requestHeaders/responseHeaders extension:
// {set: [{name, value}], add: [{name, value}], remove: [name]}.
func (d *decoder) headerMutation(n *yaml.Node, path string) *HeaderMutation {
	m := &HeaderMutation{}
	fs := d.fields(n, path, "set", "add", "remove")
	name := func(v *yaml.Node, p string) (string, bool) {
		s, ok := d.str(v, p)
		if !ok {
			return "", false
		}
		if err := CheckRouteHeader(s, ""); err != nil {
			d.errorf(v, p, "%v", err)
			return "", false
		}
		return s, true
	}
	values := func(key string) []HeaderValue {
		var out []HeaderValue
		f, ok := fs[key]
		if !ok {
			return nil
		}
		for i, item := range d.seq(f.value, path+"."+key) {
			p := fmt.Sprintf("%s.%s[%d]", path, key, i)
			kv := d.fields(item, p, "name", "value")
			nf, ok := kv["name"]
			if !ok {
				d.errorf(item, p+".name", "required")
				continue
			}
			hn, ok := name(nf.value, p+".name")
			if !ok {
				continue
			}
			var hv string
			if vf, ok := kv["value"]; ok {
				hv, _ = d.str(vf.value, p+".value")
				if err := CheckRouteHeader(hn, hv); err != nil {
					d.errorf(vf.value, p+".value", "%v", err)
					continue
				}
			}
			out = append(out, HeaderValue{Name: hn, Value: hv})
		}
		return out
	}
	m.Set, m.Add = values("set"), values("add")
	if f, ok := fs["remove"]; ok {
		for i, item := range d.seq(f.value, path+".remove") {
			if hn, ok := name(item, fmt.Sprintf("%s.remove[%d]", path, i)); ok {
				m.Remove = append(m.Remove, hn)
			}
		}
	}
	return m
}

func (d *decoder) destinationPath(n *yaml.Node, path string) string {
	s, ok := d.str(n, path)
	if !ok || s == "" {
		return ""
	}
	if !strings.HasPrefix(s, "/") {
		d.errorf(n, path, "%q must start with '/'", s)
		return ""
	}
	if strings.ContainsAny(s, "?#") {
		d.errorf(n, path, "%q must not contain a query or fragment", s)
		return ""
	}
	return strings.TrimRight(s, "/")
}

func (d *decoder) rules(n *yaml.Node, path string, route bool) []*Rule {
	var out []*Rule
	for i, rn := range d.seq(n, path) {
		rp := fmt.Sprintf("%s[%d]", path, i)
		fs := d.fields(rn, rp, "path", "methods", "host", "headers", "queryParams")
		if f, ok := fs["queryParams"]; ok && !route {
			d.errorf(f.key, rp+".queryParams", "query parameter matches choose a route; a policy's rules cannot use them")
			delete(fs, "queryParams")
		}
		r := &Rule{Line: rn.Line}
		re := func(name string) string {
			f, ok := fs[name]
			if !ok {
				return ""
			}
			s, ok := d.raw(f.value, rp+"."+name)
			if !ok {
				return ""
			}
			if err := checkRegexp(s); err != nil {
				d.errorf(f.value, rp+"."+name, "invalid regular expression %q: %v", s, unwrapRegexp(err))
				return ""
			}
			return s
		}
		r.Path = re("path")
		r.Methods = re("methods")
		r.Host = re("host")
		for _, h := range d.pairs(fs["headers"].value, rp+".headers") {
			hp := rp + ".headers." + h.key.Value
			if h.key.Value == "" || strings.ContainsAny(h.key.Value, " \t\r\n") {
				d.errorf(h.key, hp, "invalid header name %q", h.key.Value)
				continue
			}
			v, ok := d.raw(h.value, hp)
			if !ok {
				continue
			}
			if err := checkRegexp(v); err != nil {
				d.errorf(h.value, hp, "invalid regular expression %q: %v", v, unwrapRegexp(err))
				continue
			}
			r.Headers = append(r.Headers, HeaderRule{Name: h.key.Value, Value: v})
		}
		for _, q := range d.pairs(fs["queryParams"].value, rp+".queryParams") {
			qp := rp + ".queryParams." + q.key.Value
			if q.key.Value == "" {
				d.errorf(q.key, qp, "a query parameter name is required")
				continue
			}
			v, ok := d.raw(q.value, qp)
			if !ok {
				continue
			}
			if err := checkRegexp(v); err != nil {
				d.errorf(q.value, qp, "invalid regular expression %q: %v", v, unwrapRegexp(err))
				continue
			}
			r.Query = append(r.Query, QueryRule{Name: q.key.Value, Value: v})
		}
		out = append(out, r)
	}
	return out
}

// unwrapRegexp trims Go's "error parsing regexp: " prefix, which repeats
// what the message already says.
func unwrapRegexp(err error) string {
	return strings.TrimPrefix(err.Error(), "error parsing regexp: ")
}

func (d *decoder) service(spec *yaml.Node) *Service {
	svc := &Service{Meta: *d.meta}
	d.meta = &svc.Meta
	fs := d.fields(spec, "spec", upstreamFields...)
	svc.Upstream = d.upstream(spec, fs, "spec")
	return svc
}

// upstream decodes a service address and flexgw's upstream extensions.
func (d *decoder) upstream(n *yaml.Node, fs map[string]field, path string) Upstream {
	u := Upstream{LoadBalancer: "round-robin"}
	if f, ok := fs["address"]; ok {
		if s, ok := d.str(f.value, path+".address"); ok {
			a, err := parseAddress(s)
			if err != nil {
				d.errorf(f.value, path+".address", "%v", err)
			}
			a.Line = f.value.Line
			u.Address = a
		}
	} else {
		d.errorf(n, path+".address", "required (protocol://host:port)")
	}
	for i, e := range d.seq(fs["endpoints"].value, path+".endpoints") {
		ep := fmt.Sprintf("%s.endpoints[%d]", path, i)
		s, ok := d.str(e, ep)
		if !ok {
			continue
		}
		a, err := parseAddress(s)
		a.Line = e.Line
		switch {
		case err != nil:
			d.errorf(e, ep, "%v", err)
		case u.Address.Protocol != "" && a.Protocol != u.Address.Protocol:
			d.errorf(e, ep, "protocol %s differs from the service address (%s); every endpoint must speak the same protocol", a.Protocol, u.Address.Protocol)
		case a.Path != "" && a.Path != u.Address.Path:
			d.errorf(e, ep, "path %q differs from the service address path %q; endpoints differ only in host and port", a.Path, u.Address.Path)
		default:
			u.Endpoints = append(u.Endpoints, a)
		}
	}
	if f, ok := fs["loadBalancer"]; ok {
		if s, ok := d.str(f.value, path+".loadBalancer"); ok {
			switch s {
			case "round-robin", "least-request":
				u.LoadBalancer = s
			default:
				d.errorf(f.value, path+".loadBalancer", "unknown load balancer %q (expected round-robin or least-request)", s)
			}
		}
	}
	if f, ok := fs["http2"]; ok {
		u.HTTP2, _ = d.boolean(f.value, path+".http2")
	}
	if f, ok := fs["connectTimeout"]; ok {
		u.ConnectTimeout, _ = d.duration(f.value, path+".connectTimeout")
	}
	if f, ok := fs["healthCheck"]; ok && !isNull(f.value) {
		u.HealthCheck = d.healthCheck(f.value, path+".healthCheck")
	}
	u.PassiveHealth = &PassiveHealth{Enabled: true, ConsecutiveFailures: 5, EjectionTime: 30e9, MaxEjectionPercent: 100}
	if f, ok := fs["passiveHealth"]; ok {
		d.passiveHealth(u.PassiveHealth, f.value, path+".passiveHealth")
	}
	return u
}

func (d *decoder) healthCheck(n *yaml.Node, path string) *HealthCheck {
	h := &HealthCheck{Path: "/", Interval: 10e9, Timeout: 2e9, HealthyThreshold: 2, UnhealthyThreshold: 3}
	fs := d.fields(n, path, "path", "interval", "timeout", "healthyThreshold", "unhealthyThreshold", "expectedStatuses")
	if f, ok := fs["path"]; ok {
		if s, ok := d.str(f.value, path+".path"); ok {
			if !strings.HasPrefix(s, "/") {
				d.errorf(f.value, path+".path", "%q must start with '/'", s)
			} else {
				h.Path = s
			}
		}
	}
	d.positiveDuration(fs, path, "interval", &h.Interval)
	d.positiveDuration(fs, path, "timeout", &h.Timeout)
	if h.Timeout > h.Interval {
		d.errorf(n, path+".timeout", "%v is longer than the interval %v; a check must end before the next one starts", h.Timeout, h.Interval)
	}
	d.intIn(fs, path, "healthyThreshold", 1, -1, &h.HealthyThreshold, "")
	d.intIn(fs, path, "unhealthyThreshold", 1, -1, &h.UnhealthyThreshold, "")
	for i, s := range d.seq(fs["expectedStatuses"].value, path+".expectedStatuses") {
		sp := fmt.Sprintf("%s.expectedStatuses[%d]", path, i)
		if v, ok := d.integer(s, sp); ok {
			if v < 100 || v > 599 {
				d.errorf(s, sp, "must be an HTTP status between 100 and 599, got %d", v)
			} else {
				h.ExpectedStatuses = append(h.ExpectedStatuses, v)
			}
		}
	}
	return h
}

func (d *decoder) passiveHealth(p *PassiveHealth, n *yaml.Node, path string) {
	fs := d.fields(n, path, "enabled", "consecutiveFailures", "ejectionTime", "maxEjectionPercent")
	if f, ok := fs["enabled"]; ok {
		p.Enabled, _ = d.boolean(f.value, path+".enabled")
	}
	d.intIn(fs, path, "consecutiveFailures", 1, -1, &p.ConsecutiveFailures, " (set enabled: false to turn passive health off)")
	d.positiveDuration(fs, path, "ejectionTime", &p.EjectionTime)
	d.intIn(fs, path, "maxEjectionPercent", 0, 100, &p.MaxEjectionPercent, "")
}

// positiveDuration sets *dst from the duration field name of fs when it is
// there and above zero; anything else is reported at path.name.
func (d *decoder) positiveDuration(fs map[string]field, path, name string, dst *time.Duration) {
	f, ok := fs[name]
	if !ok {
		return
	}
	if v, ok := d.duration(f.value, path+"."+name); ok {
		if v <= 0 {
			d.errorf(f.value, path+"."+name, "must be positive")
		} else {
			*dst = v
		}
	}
}

// intIn sets *dst from the integer field name of fs when it is there and
// within lo..hi (hi < 0: no upper bound); anything else is reported at
// path.name, with hint after the reason.
func (d *decoder) intIn(fs map[string]field, path, name string, lo, hi int, dst *int, hint string) {
	f, ok := fs[name]
	if !ok {
		return
	}
	v, ok := d.integer(f.value, path+"."+name)
	switch {
	case !ok:
	case hi < 0 && v < lo:
		d.errorf(f.value, path+"."+name, "must be at least %d, got %d%s", lo, v, hint)
	case hi >= 0 && (v < lo || v > hi):
		d.errorf(f.value, path+"."+name, "must be between %d and %d, got %d%s", lo, hi, v, hint)
	default:
		*dst = v
	}
}

func (d *decoder) binding(spec *yaml.Node) *PolicyBinding {
	b := &PolicyBinding{Meta: *d.meta}
	d.meta = &b.Meta
	fs := d.fields(spec, "spec", "targetRef", "policyRef", "config", "order", "rules")
	b.Policy = Policy{Line: b.Line, Field: "spec", Order: DefaultPolicyOrder}
	if f, ok := fs["targetRef"]; ok {
		tf := d.fields(f.value, "spec.targetRef", "kind", "name", "namespace", "selector")
		b.TargetRef.Line = f.value.Line
		if nf, ok := tf["name"]; ok {
			b.TargetRef.Name, _ = d.str(nf.value, "spec.targetRef.name")
		}
		selector := false
		if kf, ok := tf["kind"]; ok {
			k, _ := d.str(kf.value, "spec.targetRef.kind")
			selector = k == KindSelector
		}
		switch {
		case selector:
			b.Selector = d.selector(tf["selector"], f.value)
			if b.TargetRef.Name != "" {
				d.errorf(tf["name"].value, "spec.targetRef.name", "a Selector target selects by labels; remove name (or use kind: ApiInstance)")
			}
		case b.TargetRef.Name == "":
			d.errorf(f.value, "spec.targetRef.name", "required")
		}
		if sf, ok := tf["selector"]; ok && !selector {
			d.errorf(sf.key, "spec.targetRef.selector", "only valid with kind: Selector")
		}
		b.TargetRef.Namespace = b.Namespace
		if selector {
			// "All API instances" (Flex): every namespace, unless the
			// target names one.
			b.TargetRef.Namespace = ""
		}
		if nf, ok := tf["namespace"]; ok && !isNull(nf.value) {
			b.TargetRef.Namespace, _ = d.str(nf.value, "spec.targetRef.namespace")
		}
		if kf, ok := tf["kind"]; ok {
			k, _ := d.str(kf.value, "spec.targetRef.kind")
			if k != KindApiInstance && k != KindService && k != KindSelector {
				d.errorf(kf.value, "spec.targetRef.kind", "must be ApiInstance, Service or Selector, got %q", k)
			} else {
				b.TargetRef.Kind = k
			}
		}
	} else {
		d.errorf(spec, "spec.targetRef", "required")
	}
	d.policyBody(&b.Policy.Ref, &b.Policy, fs, "spec", spec)
	if f, ok := fs["order"]; ok && !isNull(f.value) {
		b.Policy.Order, _ = d.integer(f.value, "spec.order")
	}
	switch b.Policy.Ref.Name {
	case PolicyRoute:
		b.Route = d.routeBinding(fs["config"], false)
	case PolicyRouteWeighted:
		b.Route = d.routeBinding(fs["config"], true)
	}
	if b.Route != nil {
		b.Route.Rules = b.Policy.Rules
		b.Route.Line = b.Line
		if b.Selector != nil {
			d.errorf(nil, "spec.targetRef.kind", "%s bindings target one ApiInstance by name; a Selector cannot route", b.Policy.Ref.Name)
		}
	}
	return b
}

// selector decodes targetRef.selector; Flex writes kind: ApiInstance and
// optional labels (none selects every ApiInstance).
func (d *decoder) selector(f field, target *yaml.Node) *Selector {
	s := &Selector{Kind: KindApiInstance}
	if f.value == nil || isNull(f.value) {
		d.errorf(target, "spec.targetRef.selector", "required with kind: Selector (selector.kind: ApiInstance, optional selector.labels)")
		return s
	}
	fs := d.fields(f.value, "spec.targetRef.selector", "kind", "labels")
	if kf, ok := fs["kind"]; ok {
		if k, ok := d.str(kf.value, "spec.targetRef.selector.kind"); ok && k != KindApiInstance {
			d.errorf(kf.value, "spec.targetRef.selector.kind", "must be ApiInstance, got %q (automated policies apply to API instances)", k)
		}
	}
	if lf, ok := fs["labels"]; ok {
		s.Labels = d.stringMap(lf.value, "spec.targetRef.selector.labels")
	}
	return s
}

// routeBinding decodes the config of a route or route-weighted binding.
func (d *decoder) routeBinding(cfg field, weighted bool) *Route {
	r := &Route{}
	if cfg.value == nil {
		d.errorf(nil, "spec.config", "required (a route needs a destination)")
		return r
	}
	if !weighted {
		cf := d.fields(cfg.value, "spec.config", "destinationRef", "destinationPath", "timeout", "retries", "websocket", "requestHeaders", "responseHeaders", "hostRewrite", "preserveHost", "redirect", "directResponse", "mirrors")
		d.routeOptions(r, cf, "spec.config")
		f, ok := cf["destinationRef"]
		answers := r.Redirect != nil || r.DirectResponse != nil
		switch {
		case r.Redirect != nil && r.DirectResponse != nil:
			d.errorf(cfg.value, "spec.config.directResponse", "a route answers with a redirect or a direct response, not both")
			return r
		case answers && len(r.Mirrors) > 0:
			d.errorf(cfg.value, "spec.config.mirrors", "a route that answers with a redirect or a direct response forwards nothing to mirror")
			return r
		case answers && ok:
			d.errorf(f.value, "spec.config.destinationRef", "a route that answers with a redirect or a direct response has no destination")
			return r
		case answers:
			return r
		case !ok:
			d.errorf(cfg.value, "spec.config.destinationRef", "required (or a redirect or directResponse)")
			return r
		}
		r.Destinations = []*Destination{{Ref: d.destRef(f.value, "spec.config.destinationRef"), Weight: 100, Line: f.value.Line}}
		return r
	}
	cf := d.fields(cfg.value, "spec.config", "routes", "timeout", "retries", "websocket", "requestHeaders", "responseHeaders", "hostRewrite", "preserveHost", "mirrors")
	d.routeOptions(r, cf, "spec.config")
	items := d.seq(cf["routes"].value, "spec.config.routes")
	if len(items) == 0 {
		d.errorf(cfg.value, "spec.config.routes", "at least one destination is required")
	}
	for i, n := range items {
		p := fmt.Sprintf("spec.config.routes[%d]", i)
		fs := d.fields(n, p, "weight", "destinationPath", "destinationRef", "directResponse")
		dst := &Destination{Line: n.Line}
		if f, ok := fs["weight"]; ok {
			if v, ok := d.integer(f.value, p+".weight"); ok {
				if v < 1 || v > 100 {
					d.errorf(f.value, p+".weight", "must be between 1 and 100, got %d", v)
				}
				dst.Weight = v
			}
		} else {
			d.errorf(n, p+".weight", "required")
		}
		if f, ok := fs["destinationPath"]; ok {
			dst.DestinationPath = d.destinationPath(f.value, p+".destinationPath")
		}
		f, hasRef := fs["destinationRef"]
		dr, hasDirect := fs["directResponse"]
		switch {
		case hasRef && hasDirect:
			d.errorf(dr.value, p+".directResponse", "a destination has a destinationRef or a directResponse, not both")
		case hasRef:
			dst.Ref = d.destRef(f.value, p+".destinationRef")
		case hasDirect:
			dst.DirectResponse = d.directResponse(dr.value, p+".directResponse")
		default:
			d.errorf(n, p+".destinationRef", "required (or a directResponse)")
		}
		r.Destinations = append(r.Destinations, dst)
	}
	return r
}

func (d *decoder) destRef(n *yaml.Node, path string) Ref {
	ref := Ref{Kind: KindService, Namespace: d.meta.Namespace, Line: n.Line}
	fs := d.fields(n, path, "kind", "name", "namespace")
	// Flex's route pages write `kind: Service`; a route can reach nothing else.
	if f, ok := fs["kind"]; ok && !isNull(f.value) {
		if k, ok := d.str(f.value, path+".kind"); ok && k != KindService {
			d.errorf(f.value, path+".kind", "must be Service, got %q (a route sends requests to a Service)", k)
		}
	}
	if f, ok := fs["name"]; ok {
		ref.Name, _ = d.str(f.value, path+".name")
	}
	if ref.Name == "" {
		d.errorf(n, path+".name", "required")
	}
	if f, ok := fs["namespace"]; ok && !isNull(f.value) {
		ref.Namespace, _ = d.str(f.value, path+".namespace")
	}
	return ref
}
