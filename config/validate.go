package config

import (
	"fmt"
	"net"
	"strconv"
)

// validate runs the checks that span resources: duplicate names,
// references, and APIs sharing a port. It resolves every PolicyBinding's
// TargetRef.Kind so the compiler need not search again.
func validate(set *Set, errs *ErrorList) {
	add := func(e *Error) { *errs = append(*errs, e) }

	type seenAt struct {
		file string
		line int
	}
	seen := map[string]seenAt{}
	dup := func(m *Meta) {
		if m.Name == "" {
			return
		}
		key := m.Kind + "/" + m.Key()
		if prev, ok := seen[key]; ok {
			add(m.errorf(m.Line, "metadata.name", fmt.Sprintf("duplicate %s %q in namespace %q (first defined at %s:%d)", m.Kind, m.Name, m.Namespace, prev.file, prev.line)))
			return
		}
		seen[key] = seenAt{m.File, m.Line}
	}
	apis := map[string]*ApiInstance{}
	for _, a := range set.APIs {
		dup(&a.Meta)
		if _, ok := apis[a.Key()]; !ok {
			apis[a.Key()] = a
		}
		for i, p := range a.Policies {
			if p.Ref.Name == PolicyRoute || p.Ref.Name == PolicyRouteWeighted {
				add(a.errorf(p.Line, fmt.Sprintf("spec.policies[%d].policyRef.name", i), fmt.Sprintf("%s policies are only supported as a PolicyBinding; inline routes go under spec.services.<name>.routes", p.Ref.Name)))
			}
		}
	}
	services := map[string]*Service{}
	for _, s := range set.Services {
		dup(&s.Meta)
		if _, ok := services[s.Key()]; !ok {
			services[s.Key()] = s
		}
	}
	for _, b := range set.Bindings {
		dup(&b.Meta)
	}
	for _, c := range set.Configurations {
		dup(&c.Meta)
	}

	for _, b := range set.Bindings {
		t := &b.TargetRef
		if t.Name == "" || b.Selector != nil {
			continue
		}
		_, isAPI := apis[t.Key()]
		_, isSvc := services[t.Key()]
		switch {
		case b.IsRoute():
			if t.Kind == KindService || !isAPI {
				reason := fmt.Sprintf("ApiInstance %q not found in namespace %q", t.Name, t.Namespace)
				if isSvc {
					reason = fmt.Sprintf("%s binding must target an ApiInstance, not Service %q", b.Policy.Ref.Name, t.Name)
				}
				add(b.errorf(t.Line, "spec.targetRef", reason))
				break
			}
			t.Kind = KindApiInstance
			for i, d := range b.Route.Destinations {
				if d.Ref.Name == "" {
					continue
				}
				if _, ok := services[d.Ref.Key()]; !ok {
					field := "spec.config.destinationRef"
					if b.Policy.Ref.Name == PolicyRouteWeighted {
						field = fmt.Sprintf("spec.config.routes[%d].destinationRef", i)
					}
					add(b.errorf(d.Ref.Line, field, fmt.Sprintf("Service %q not found in namespace %q", d.Ref.Name, d.Ref.Namespace)))
				}
			}
			for i, m := range b.Route.Mirrors {
				if _, ok := services[m.Key()]; !ok && m.Name != "" {
					add(b.errorf(m.Line, fmt.Sprintf("spec.config.mirrors[%d]", i), fmt.Sprintf("Service %q not found in namespace %q", m.Name, m.Namespace)))
				}
			}
		case t.Kind == KindApiInstance && !isAPI, t.Kind == KindService && !isSvc, t.Kind == "" && !isAPI && !isSvc:
			what := "ApiInstance or Service"
			if t.Kind != "" {
				what = t.Kind
			}
			add(b.errorf(t.Line, "spec.targetRef", fmt.Sprintf("%s %q not found in namespace %q", what, t.Name, t.Namespace)))
		case t.Kind == "" && isAPI:
			// An ApiInstance and a Service may share a name; the
			// ApiInstance wins unless targetRef.kind says Service.
			t.Kind = KindApiInstance
		case t.Kind == "":
			t.Kind = KindService
		}
	}

	checkSharedPorts(set, errs)

	var logging, storage, tracing, timeouts, breaker, defTLS *Meta
	for _, c := range set.Configurations {
		once := func(prev **Meta, section string, line int) {
			if *prev != nil {
				add(c.errorf(line, "spec."+section, fmt.Sprintf("already configured by Configuration %q at %s:%d; only one Configuration may set %s", (*prev).Name, (*prev).File, (*prev).Line, section)))
				return
			}
			*prev = &c.Meta
		}
		if c.Logging != nil {
			once(&logging, "logging", c.Logging.Line)
		}
		if c.SharedStorage != nil {
			once(&storage, "sharedStorage", c.SharedStorage.Line)
		}
		if c.Tracing != nil {
			once(&tracing, "tracing", c.Tracing.Line)
		}
		if c.Timeouts != nil {
			once(&timeouts, "timeouts", c.Timeouts.Line)
		}
		if c.CircuitBreaker != nil {
			once(&breaker, "circuitBreaker", c.CircuitBreaker.Line)
		}
		if c.DefaultTLS != nil {
			once(&defTLS, "defaultTLS", c.DefaultTLS.Line)
		}
	}
}

// checkSharedPorts reports APIs on one port whose base paths clash, whose
// protocols differ, or whose hosts cannot both be bound.
func checkSharedPorts(set *Set, errs *ErrorList) {
	add := func(e *Error) { *errs = append(*errs, e) }
	byPort := map[int][]*ApiInstance{}
	var ports []int
	for _, a := range set.APIs {
		if a.Address.Port == 0 {
			continue
		}
		if _, ok := byPort[a.Address.Port]; !ok {
			ports = append(ports, a.Address.Port)
		}
		byPort[a.Address.Port] = append(byPort[a.Address.Port], a)
	}
	for _, port := range ports {
		list := byPort[port]
		for i, b := range list {
			before := len(*errs)
			for _, a := range list[:i] {
				if len(*errs) > before {
					break // one clash per API says enough
				}
				where := fmt.Sprintf("ApiInstance %q (%s:%d)", a.Key(), a.File, a.Address.Line)
				ab, bb := a.Address, b.Address
				sameHost := ab.Host == bb.Host
				switch {
				case !sameHost && !wildcard(ab.Host) && !wildcard(bb.Host):
					continue // distinct addresses on one port: separate listeners
				case !sameHost:
					add(b.errorf(bb.Line, "spec.address", fmt.Sprintf("host %s and host %s of %s cannot both listen on port %d; use the same host", bb.Host, ab.Host, where, port)))
				case ab.Protocol != bb.Protocol:
					add(b.errorf(bb.Line, "spec.address", fmt.Sprintf("protocol %s differs from %s of %s on the shared port %d", bb.Protocol, ab.Protocol, where, port)))
				case basePathsClash(ab.Path, bb.Path):
					add(b.errorf(bb.Line, "spec.address", fmt.Sprintf("base path %q clashes with base path %q of %s on the shared port %s", slash(bb.Path), slash(ab.Path), where, net.JoinHostPort(bb.Host, strconv.Itoa(port)))))
				}
			}
		}
	}
}

func wildcard(host string) bool {
	return host == "0.0.0.0" || host == "::" || host == "*"
}

func slash(p string) string {
	if p == "" {
		return "/"
	}
	return p
}
