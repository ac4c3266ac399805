package kube

import (
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"regexp/syntax"

	"github.com/flexgw/flexgw/config"
)

// gatewayListener is one listener of a Gateway of flexgw's class.
type gatewayListener struct {
	gateway  *unstructured.Unstructured
	name     string
	port     int64
	protocol string // HTTP or HTTPS when served
	hostname string
	api      string // the ApiInstance of its port
	// served is false for a listener flexgw does not serve; accepted and
	// programmed then say why.
	served   bool
	accepted *certProblem // reason and message of Accepted=False
	// refs is the first certificate reference not used (ResolvedRefs=False);
	// the listener still serves when another certificate is good.
	refs *certProblem
	// conflict is ProtocolConflict when another listener took the port
	// with another protocol.
	conflict string
	// from and selector are allowedRoutes.namespaces: Same (the default),
	// All, or Selector with a label selector on the route's Namespace.
	from     string
	selector labels.Selector
	// noHTTPRoutes is true when allowedRoutes.kinds names kinds and
	// HTTPRoute is not among them: no route attaches.
	noHTTPRoutes bool
	// kindsProblem is InvalidRouteKinds when allowedRoutes.kinds names a
	// kind flexgw does not serve (ResolvedRefs=False).
	kindsProblem *certProblem
}

// allows reports whether the listener accepts routes of namespace ns.
func (s *Source) allows(l *gatewayListener, ns string) bool {
	switch l.from {
	case "All":
		return true
	case "Selector":
		if l.selector == nil || s.stores["Namespace"] == nil {
			return false
		}
		o, ok, _ := s.stores["Namespace"].GetByKey(ns)
		if !ok {
			return false
		}
		return l.selector.Matches(labels.Set(o.(*unstructured.Unstructured).GetLabels()))
	default:
		return ns == l.gateway.GetNamespace()
	}
}

// allowedRoutes decodes a listener's allowedRoutes.namespaces; a selector
// that does not parse allows nothing (the listener is then not Accepted).
func allowedRoutes(l *gatewayListener, m map[string]any) {
	ar, _ := m["allowedRoutes"].(map[string]any)
	if ks, ok := ar["kinds"].([]any); ok && len(ks) > 0 {
		l.noHTTPRoutes = true
		for _, k := range ks {
			km, _ := k.(map[string]any)
			g, ok := km["group"]
			if str(km["kind"]) == "HTTPRoute" && (!ok || str(g) == "gateway.networking.k8s.io") {
				l.noHTTPRoutes = false
			} else if l.kindsProblem == nil {
				l.kindsProblem = &certProblem{"InvalidRouteKinds", fmt.Sprintf("allowedRoutes.kinds: %s/%s is not a route kind flexgw serves (HTTPRoute)", str(g), str(km["kind"]))}
			}
		}
	}
	nsm, _ := ar["namespaces"].(map[string]any)
	l.from = str(nsm["from"])
	if l.from != "Selector" {
		return
	}
	raw, _ := nsm["selector"].(map[string]any)
	var ls metav1.LabelSelector
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &ls); err != nil {
		l.accepted = &certProblem{"UnsupportedValue", "allowedRoutes.namespaces.selector: " + err.Error()}
		return
	}
	sel, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil {
		l.accepted = &certProblem{"UnsupportedValue", "allowedRoutes.namespaces.selector: " + err.Error()}
		return
	}
	l.selector = sel
}

// portAPI is the ApiInstance every served listener of one port shares.
type portAPI struct {
	name     string
	protocol string
	certs    []certKey
}

// ourGatewayClasses returns the GatewayClass names flexgw controls.
func (s *Source) ourGatewayClasses() map[string]bool {
	out := map[string]bool{}
	st := s.stores["GatewayClass"]
	if st == nil {
		return out
	}
	for _, o := range st.List() {
		u := o.(*unstructured.Unstructured)
		if c, _, _ := unstructured.NestedString(u.Object, "spec", "controllerName"); c == GatewayController {
			out[u.GetName()] = true
		}
	}
	return out
}

// gatewayListeners returns every listener of the Gateways flexgw serves,
// served or not, and one ApiInstance per port: listeners sharing a port
// share it (their hostnames becoming host rules of the routes, their
// certificates one TLS context chosen by SNI). The oldest Gateway's
// listener decides a port's protocol; a later one speaking another is
// conflicted.
func (s *Source) gatewayListeners() ([]*gatewayListener, map[int64]*portAPI) {
	st := s.stores["Gateway"]
	if st == nil {
		return nil, nil
	}
	classes := s.ourGatewayClasses()
	var gws []*unstructured.Unstructured
	for _, o := range st.List() {
		u := o.(*unstructured.Unstructured)
		if c, _, _ := unstructured.NestedString(u.Object, "spec", "gatewayClassName"); classes[c] {
			gws = append(gws, u)
		}
	}
	sortByAge(gws)
	apis := map[int64]*portAPI{}
	var out []*gatewayListener
	for _, gw := range gws {
		ls, _, _ := unstructured.NestedSlice(gw.Object, "spec", "listeners")
		for _, x := range ls {
			m, _ := x.(map[string]any)
			l := &gatewayListener{gateway: gw, name: str(m["name"]), port: toInt64(m["port"]), protocol: str(m["protocol"]), hostname: str(m["hostname"])}
			out = append(out, l)
			if allowedRoutes(l, m); l.accepted != nil {
				continue
			}
			var certs []certKey
			switch l.protocol {
			case "HTTP":
			case "HTTPS":
				tlsCfg, _ := m["tls"].(map[string]any)
				if mode := str(tlsCfg["mode"]); mode != "" && mode != "Terminate" {
					l.accepted = &certProblem{"UnsupportedValue", "tls.mode " + mode + ": flexgw terminates TLS on HTTPS listeners"}
					continue
				}
				certs, l.refs = s.listenerCerts(gw, tlsCfg)
				if len(certs) == 0 {
					continue // ResolvedRefs=False says why; Programmed=False
				}
			default:
				l.accepted = &certProblem{"UnsupportedProtocol", "flexgw serves HTTP and HTTPS listeners, not " + l.protocol}
				continue
			}
			a, ok := apis[l.port]
			if !ok {
				a = &portAPI{name: fmt.Sprintf("gateway-%d", l.port), protocol: l.protocol}
				apis[l.port] = a
			}
			if a.protocol != l.protocol {
				l.conflict = "ProtocolConflict"
				l.accepted = &certProblem{"ProtocolConflict", fmt.Sprintf("port %d already serves %s", l.port, a.protocol)}
				continue
			}
			for _, c := range certs {
				a.certs = addCert(a.certs, c)
			}
			l.served, l.api = true, a.name
		}
	}
	return out, apis
}

// listenerCerts resolves an HTTPS listener's certificateRefs: the good
// certificates, and the first reference that could not be used.
func (s *Source) listenerCerts(gw *unstructured.Unstructured, tlsCfg map[string]any) ([]certKey, *certProblem) {
	refs, _ := tlsCfg["certificateRefs"].([]any)
	if len(refs) == 0 {
		return nil, &certProblem{"InvalidCertificateRef", "an HTTPS listener needs tls.certificateRefs"}
	}
	var certs []certKey
	var first *certProblem
	note := func(p *certProblem) {
		if first == nil {
			first = p
		}
	}
	for _, r := range refs {
		m, _ := r.(map[string]any)
		name, ns := str(m["name"]), str(m["namespace"])
		if ns == "" {
			ns = gw.GetNamespace()
		}
		if k := str(m["kind"]); str(m["group"]) != "" || (k != "" && k != "Secret") {
			note(&certProblem{"InvalidCertificateRef", fmt.Sprintf("certificateRef %s/%s %q: only core Secrets hold certificates", str(m["group"]), k, name)})
			continue
		}
		if ns != gw.GetNamespace() && !s.refGranted("gateway.networking.k8s.io", "Gateway", gw.GetNamespace(), "", "Secret", ns, name) {
			note(&certProblem{"RefNotPermitted", fmt.Sprintf("Secret %s/%s is in another namespace and no ReferenceGrant there allows Gateways of namespace %s to use it", ns, name, gw.GetNamespace())})
			continue
		}
		c, p := s.tlsSecret(ns, name)
		if p != nil {
			note(p)
			continue
		}
		certs = addCert(certs, c)
	}
	return certs, first
}

// routeParent is one parentRef of an HTTPRoute resolved to listeners.
type routeParent struct {
	ref       map[string]any
	listeners []*gatewayListener
	// unserved are the listeners the route attaches to that are valid but
	// not served for want of a usable certificate: they count the route
	// in attachedRoutes (Gateway API) and serve nothing.
	unserved []*gatewayListener
	// hosts are, per listener, the hostnames the route serves there: the
	// intersection of the route's and the listener's ("" is any host).
	hosts map[*gatewayListener][]string
	// reason and msg say why no listener accepted the route
	// (NoMatchingParent, NotAllowedByListeners, NoMatchingListenerHostname).
	reason, msg string
}

// parents resolves an HTTPRoute's parentRefs to the served listeners that
// accept it: its sectionName and port, the listener's allowedRoutes, and a
// hostname both share, in that order (the first one failing is the
// reason the spec gives for Accepted=False).
func (s *Source) parents(rt *unstructured.Unstructured, ls []*gatewayListener) []routeParent {
	refs, _, _ := unstructured.NestedSlice(rt.Object, "spec", "parentRefs")
	hostnames, _, _ := unstructured.NestedStringSlice(rt.Object, "spec", "hostnames")
	var out []routeParent
	for _, r := range refs {
		m, _ := r.(map[string]any)
		if k := str(m["kind"]); (k != "" && k != "Gateway") || (m["group"] != nil && str(m["group"]) != "gateway.networking.k8s.io") {
			continue
		}
		ns := str(m["namespace"])
		if ns == "" {
			ns = rt.GetNamespace()
		}
		p := routeParent{ref: m, hosts: map[*gatewayListener][]string{}}
		var ours, matched, allowed int
		for _, l := range ls {
			if l.gateway.GetNamespace() != ns || l.gateway.GetName() != str(m["name"]) {
				continue
			}
			if ours++; !l.served && (l.accepted != nil || l.refs == nil) {
				continue
			}
			if sn := str(m["sectionName"]); sn != "" && sn != l.name {
				continue
			}
			if pt := toInt64(m["port"]); pt != 0 && pt != l.port {
				continue
			}
			matched++
			if l.noHTTPRoutes || !s.allows(l, rt.GetNamespace()) {
				continue
			}
			allowed++
			hs := intersectHosts(hostnames, l.hostname)
			if len(hs) == 0 {
				continue
			}
			if !l.served {
				p.unserved = append(p.unserved, l)
				continue
			}
			p.listeners = append(p.listeners, l)
			p.hosts[l] = hs
		}
		switch {
		case ours == 0:
			continue // another controller's Gateway: its status is not ours to write
		case matched == 0:
			p.reason, p.msg = "NoMatchingParent", "no served listener of this Gateway matches the parentRef's sectionName and port"
		case allowed == 0:
			p.reason, p.msg = "NotAllowedByListeners", "the matching listeners' allowedRoutes do not admit HTTPRoutes of namespace "+rt.GetNamespace()
		case len(p.listeners) == 0 && len(p.unserved) == 0:
			p.reason, p.msg = "NoMatchingListenerHostname", "none of the route's hostnames matches a listener's hostname"
		}
		out = append(out, p)
	}
	return out
}

// intersectHosts is the hostnames a route serves on a listener (Gateway
// API's rule): with no route hostnames, the listener's; with no listener
// hostname, the route's; otherwise each route hostname the listener's
// matches, the more specific of the two when both are wildcards or one
// is. An empty result means the route does not attach; [""] is any host.
func intersectHosts(route []string, listener string) []string {
	if len(route) == 0 {
		return []string{listener}
	}
	if listener == "" {
		return route
	}
	var out []string
	for _, h := range route {
		switch {
		case h == listener:
			out = append(out, h)
		case strings.HasPrefix(listener, "*.") && hostUnder(h, listener[1:]):
			out = append(out, h)
		case strings.HasPrefix(h, "*.") && hostUnder(listener, h[1:]):
			out = append(out, listener)
		}
	}
	return out
}

// hostUnder reports whether h (a hostname or "*.suffix") lies strictly
// below suffix (".example.com"): a Gateway API wildcard covers one or more
// labels.
func hostUnder(h, suffix string) bool {
	return strings.HasSuffix(h, suffix) && len(h) > len(suffix) && !strings.HasPrefix(h, ".")
}

// httpRoutes translates the HTTPRoutes attached to served listeners into
// route entries, Flex Services for their backends, the Flex rules each
// route covers, and the status each route and Gateway should report.
func (s *Source) httpRoutes(ls []*gatewayListener, svcDocs map[string]genDoc) (entries []*routeEntry, rulesOf map[string][]any, st map[string]*routeStatus) {
	rulesOf, st = map[string][]any{}, map[string]*routeStatus{}
	store := s.stores["HTTPRoute"]
	if store == nil || len(ls) == 0 {
		return nil, rulesOf, st
	}
	var routes []*unstructured.Unstructured
	for _, o := range store.List() {
		routes = append(routes, o.(*unstructured.Unstructured))
	}
	sortByAge(routes)
	for _, rt := range routes {
		ps := s.parents(rt, ls)
		type attachment struct {
			l     *gatewayListener
			hosts []string
		}
		var attached []attachment
		seen := map[*gatewayListener]bool{}
		for _, p := range ps {
			for _, l := range p.listeners {
				if !seen[l] {
					seen[l] = true
					attached = append(attached, attachment{l, p.hosts[l]})
				}
			}
		}
		ns, owner := rt.GetNamespace(), "HTTPRoute/"+rt.GetNamespace()+"/"+rt.GetName()
		if len(ps) == 0 {
			continue
		}
		rs := &routeStatus{parents: ps, resolved: true}
		st[owner] = rs
		unserved := false
		for _, p := range ps {
			unserved = unserved || len(p.unserved) > 0
		}
		// A route attached only to listeners not served still reports
		// whether its backends resolve; it yields no route entries.
		if len(attached) == 0 && !unserved {
			continue
		}
		rules, _, _ := unstructured.NestedSlice(rt.Object, "spec", "rules")
		for _, r := range rules {
			rm, _ := r.(map[string]any)
			var dests []map[string]any
			var ws []int64
			brs, _ := rm["backendRefs"].([]any)
			// The share of requests weighted to a backendRef that cannot
			// be used is answered 500 (Gateway API), beside valid ones.
			var invalid []map[string]any
			var iws []int64
			for _, b := range brs {
				bm, _ := b.(map[string]any)
				w := int64(1)
				if v, ok := bm["weight"]; ok {
					w = toInt64(v)
				}
				ref, ok := s.backendRef(rs, ns, bm, svcDocs)
				switch {
				case w == 0:
				case !ok:
					invalid = append(invalid, map[string]any{"directResponse": map[string]any{"status": int64(500)}})
					iws = append(iws, w)
				default:
					dests = append(dests, map[string]any{"destinationRef": ref})
					ws = append(ws, w)
				}
			}
			if len(dests) > 0 {
				dests, ws = append(dests, invalid...), append(ws, iws...)
			}
			for i, w := range weights(ws) {
				dests[i]["weight"] = w
			}
			if bad := unsupportedFilter(rm); bad != "" {
				rs.unsupported = bad
				continue
			}
			redirect := requestRedirect(rm)
			rw := urlRewrite(rm)
			if redirect != nil {
				rw = redirect.path
			}
			hdrs, bad := headerFilters(rm)
			if bad != "" {
				rs.unsupported = bad
				continue
			}
			if to := ruleTimeout(rm); to != "" {
				hdrs["timeout"] = to
			}
			if h := rewriteHost(rm); h != "" && redirect == nil {
				hdrs["hostRewrite"] = h
			}
			mirrors, bad := s.requestMirrors(rs, ns, rm, svcDocs)
			if bad != "" {
				rs.unsupported = bad
				continue
			}
			if len(mirrors) > 0 && redirect == nil && len(dests) > 0 {
				hdrs["mirrors"] = mirrors
			}
			// A rule that forwards nowhere answers 500 (Gateway API: every
			// backendRef invalid, or none, and no filter that answers).
			var answer map[string]any
			if redirect == nil && len(dests) == 0 {
				answer = map[string]any{"directResponse": map[string]any{"status": int64(500)}}
			}
			matches, _ := rm["matches"].([]any)
			if len(matches) == 0 {
				matches = []any{map[string]any{}}
			}
			for _, a := range attached {
				for _, h := range a.hosts {
					for _, m := range matches {
						mm, _ := m.(map[string]any)
						e := &routeEntry{owner: owner, api: a.l.api, dests: dests, rule: map[string]any{}, headers: hdrs, answer: answer}
						path, _ := mm["path"].(map[string]any)
						pv, pt := str(path["value"]), str(path["type"])
						if pv == "" {
							pv = "/"
						}
						e.rule["path"], e.destPath = rewritePath(pt, pv, rw)
						if redirect != nil {
							e.answer = map[string]any{"redirect": redirect.config(a.l, rw != nil, e.destPath)}
							e.destPath = ""
						}
						e.exact = pt == "Exact"
						e.pathLen = len(pv)
						e.hostLen, e.wildcard = hostRank(h)
						if hr := gatewayHostRegex(h); hr != "" {
							e.rule["host"] = hr
						}
						if mt := str(mm["method"]); mt != "" {
							e.methods, e.rule["methods"] = true, regexpQuote(mt)
						}
						hs, _ := mm["headers"].([]any)
						if len(hs) > 0 {
							hm := map[string]any{}
							for _, hv := range hs {
								x, _ := hv.(map[string]any)
								v := str(x["value"])
								if str(x["type"]) != "RegularExpression" {
									v = regexpQuote(v)
								}
								hm[str(x["name"])] = v
							}
							e.headerCount, e.rule["headers"] = len(hm), hm
						}
						if qm := queryMatches(mm); len(qm) > 0 {
							e.queryCount, e.rule["queryParams"] = len(qm), qm
						}
						entries = append(entries, e)
						rulesOf[owner] = append(rulesOf[owner], e.rule)
					}
				}
			}
		}
	}
	return entries, rulesOf, st
}

// servedFilters are the HTTPRoute filter types flexgw serves.
var servedFilters = map[string]bool{
	"RequestHeaderModifier": true, "ResponseHeaderModifier": true, "URLRewrite": true, "RequestRedirect": true,
	"RequestMirror": true,
}

// backendRef resolves a backendRef of an HTTPRoute of namespace ns to the
// Flex Service it becomes (a destinationRef), or records on rs why it
// cannot be used.
func (s *Source) backendRef(rs *routeStatus, ns string, bm map[string]any, svcDocs map[string]genDoc) (map[string]any, bool) {
	bns, name := str(bm["namespace"]), str(bm["name"])
	if bns == "" {
		bns = ns
	}
	if k := str(bm["kind"]); (k != "" && k != "Service") || str(bm["group"]) != "" {
		rs.fail("InvalidKind", fmt.Sprintf("backendRef %s/%s %q: flexgw routes to core Services only", str(bm["group"]), k, name))
		return nil, false
	}
	if bns != ns && !s.refGranted("gateway.networking.k8s.io", "HTTPRoute", ns, "", "Service", bns, name) {
		rs.fail("RefNotPermitted", fmt.Sprintf("Service %s/%s is in another namespace and no ReferenceGrant there allows HTTPRoutes of namespace %s to use it", bns, name, ns))
		return nil, false
	}
	addrs, ok := s.backend(bns, name, toInt64(bm["port"]), "")
	if !ok {
		rs.fail("BackendNotFound", fmt.Sprintf("Service %s/%s has no port %d", bns, name, toInt64(bm["port"])))
		return nil, false
	}
	svcName, doc := serviceDoc(bns, name, toInt64(bm["port"]), "", addrs)
	svcDocs[doc.name] = doc
	return map[string]any{"name": svcName, "namespace": bns}, true
}

// requestMirrors resolves a rule's RequestMirror filters to the route's
// mirrors extension, with the share of requests each gets (percent, or
// fraction); an invalid backendRef is left out (ResolvedRefs says why).
func (s *Source) requestMirrors(rs *routeStatus, ns string, rule map[string]any, svcDocs map[string]genDoc) ([]any, string) {
	var out []any
	fs, _ := rule["filters"].([]any)
	for _, f := range fs {
		fm, _ := f.(map[string]any)
		if str(fm["type"]) != "RequestMirror" {
			continue
		}
		m, _ := fm["requestMirror"].(map[string]any)
		percent := 100.0
		if p, ok := m["percent"]; ok {
			percent = float64(toInt64(p))
		}
		if fr, ok := m["fraction"].(map[string]any); ok {
			den := toInt64(fr["denominator"])
			if den == 0 {
				den = 100
			}
			percent = float64(toInt64(fr["numerator"])) * 100 / float64(den)
		}
		if percent < 0 || percent > 100 {
			return nil, fmt.Sprintf("requestMirror: a share of %g%% of the requests", percent)
		}
		bm, _ := m["backendRef"].(map[string]any)
		if ref, ok := s.backendRef(rs, ns, bm, svcDocs); ok {
			if percent < 100 {
				ref["percent"] = percent
			}
			out = append(out, ref)
		}
	}
	return out, ""
}

// unsupportedFilter says why a rule cannot be served as written: a filter
// type flexgw does not implement (the rule is then not served, and the
// route reports Accepted=False with UnsupportedValue).
func unsupportedFilter(rule map[string]any) string {
	fs, _ := rule["filters"].([]any)
	for _, f := range fs {
		fm, _ := f.(map[string]any)
		if t := str(fm["type"]); !servedFilters[t] {
			return "filter type " + t + " is not supported by flexgw"
		}
	}
	brs, _ := rule["backendRefs"].([]any)
	for _, b := range brs {
		bm, _ := b.(map[string]any)
		if fs, _ := bm["filters"].([]any); len(fs) > 0 {
			return fmt.Sprintf("backendRef %q: filters on a backendRef are not supported by flexgw (put them on the rule)", str(bm["name"]))
		}
	}
	return ""
}

// redirectFilter is a rule's RequestRedirect filter.
type redirectFilter struct {
	scheme, hostname string
	port, status     int64
	// path is its path modifier, as URLRewrite's (nil keeps the path).
	path *pathRewrite
}

// requestRedirect returns the rule's RequestRedirect filter, if any.
func requestRedirect(rule map[string]any) *redirectFilter {
	fs, _ := rule["filters"].([]any)
	for _, f := range fs {
		fm, _ := f.(map[string]any)
		if str(fm["type"]) != "RequestRedirect" {
			continue
		}
		m, _ := fm["requestRedirect"].(map[string]any)
		rd := &redirectFilter{scheme: str(m["scheme"]), hostname: str(m["hostname"]), port: toInt64(m["port"]), status: toInt64(m["statusCode"])}
		if rd.status == 0 {
			rd.status = 302
		}
		rd.path = pathModifier(m)
		return rd
	}
	return nil
}

// config is the redirect extension of the route for listener l. The port
// follows the spec: the filter's, else the scheme's well-known port when
// the filter sets a scheme, else the listener's; a well-known port is
// left out of the Location when the filter names the host (with the
// request's host, Envoy writes any port it is given).
func (rd *redirectFilter) config(l *gatewayListener, rewrites bool, destPath string) map[string]any {
	out := map[string]any{"statusCode": rd.status}
	scheme := strings.ToLower(l.protocol)
	if rd.scheme != "" {
		out["scheme"], scheme = rd.scheme, rd.scheme
	}
	port := rd.port
	switch {
	case port != 0:
	case rd.scheme == "https":
		port = 443
	case rd.scheme == "http":
		port = 80
	default:
		port = l.port
	}
	if rd.hostname != "" {
		out["host"] = rd.hostname
		if (scheme == "http" && port == 80) || (scheme == "https" && port == 443) {
			port = 0
		}
	}
	if port != 0 {
		out["port"] = port
	}
	if rewrites {
		if destPath == "" {
			destPath = "/"
		}
		out["path"] = destPath
	}
	return out
}

// rewriteHost is a rule's URLRewrite hostname, if it has one.
func rewriteHost(rule map[string]any) string {
	fs, _ := rule["filters"].([]any)
	for _, f := range fs {
		fm, _ := f.(map[string]any)
		if str(fm["type"]) == "URLRewrite" {
			u, _ := fm["urlRewrite"].(map[string]any)
			return str(u["hostname"])
		}
	}
	return ""
}

// queryMatches is an HTTPRouteMatch's queryParams as a Flex rule's
// queryParams extension: name to regular expression (Exact quoted); only
// the first entry of a name counts, as the spec says.
func queryMatches(match map[string]any) map[string]any {
	qs, _ := match["queryParams"].([]any)
	out := map[string]any{}
	for _, q := range qs {
		x, _ := q.(map[string]any)
		name := str(x["name"])
		if _, dup := out[name]; dup || name == "" {
			continue
		}
		v := str(x["value"])
		if str(x["type"]) != "RegularExpression" {
			v = regexpQuote(v)
		}
		out[name] = v
	}
	return out
}

// headerFilters returns a rule's RequestHeaderModifier and
// ResponseHeaderModifier filters as the route's requestHeaders and
// responseHeaders extensions, or why one cannot be served.
func headerFilters(rule map[string]any) (map[string]any, string) {
	out := map[string]any{}
	fs, _ := rule["filters"].([]any)
	for _, f := range fs {
		fm, _ := f.(map[string]any)
		var key, field string
		switch str(fm["type"]) {
		case "RequestHeaderModifier":
			key, field = "requestHeaders", "requestHeaderModifier"
		case "ResponseHeaderModifier":
			key, field = "responseHeaders", "responseHeaderModifier"
		default:
			continue
		}
		m, _ := fm[field].(map[string]any)
		mut := map[string]any{}
		for _, op := range []string{"set", "add"} {
			items, _ := m[op].([]any)
			var vs []any
			for _, it := range items {
				x, _ := it.(map[string]any)
				if err := config.CheckRouteHeader(str(x["name"]), str(x["value"])); err != nil {
					return nil, field + "." + op + ": " + err.Error()
				}
				vs = append(vs, map[string]any{"name": str(x["name"]), "value": str(x["value"])})
			}
			if len(vs) > 0 {
				mut[op] = vs
			}
		}
		rm, _ := m["remove"].([]any)
		var names []any
		for _, n := range rm {
			if err := config.CheckRouteHeader(str(n), ""); err != nil {
				return nil, field + ".remove: " + err.Error()
			}
			names = append(names, str(n))
		}
		if len(names) > 0 {
			mut["remove"] = names
		}
		if len(mut) > 0 {
			out[key] = mut
		}
	}
	return out, ""
}

// ruleTimeout is a rule's timeouts as the route's Flex timeout (the bound
// on the whole upstream exchange): timeouts.request, else
// timeouts.backendRequest (flexgw does not retry a request that reached
// its upstream, so one attempt is the whole exchange). "0s", Gateway
// API's "no timeout", and a duration Go cannot read leave the default.
func ruleTimeout(rule map[string]any) string {
	to, _ := rule["timeouts"].(map[string]any)
	for _, k := range []string{"request", "backendRequest"} {
		if v := str(to[k]); v != "" {
			if d, err := time.ParseDuration(v); err == nil && d > 0 {
				return d.String()
			}
		}
	}
	return ""
}

// pathRewrite is a URLRewrite filter's path: ReplaceFullPath or
// ReplacePrefixMatch, with its value.
type pathRewrite struct{ typ, value string }

// urlRewrite returns the rule's URLRewrite path, if it has one.
func urlRewrite(rule map[string]any) *pathRewrite {
	fs, _ := rule["filters"].([]any)
	for _, f := range fs {
		fm, _ := f.(map[string]any)
		if str(fm["type"]) != "URLRewrite" {
			continue
		}
		u, _ := fm["urlRewrite"].(map[string]any)
		return pathModifier(u)
	}
	return nil
}

// pathModifier is the path of a URLRewrite or RequestRedirect filter.
func pathModifier(f map[string]any) *pathRewrite {
	p, _ := f["path"].(map[string]any)
	switch t := str(p["type"]); t {
	case "ReplaceFullPath":
		return &pathRewrite{t, str(p["replaceFullPath"])}
	case "ReplacePrefixMatch":
		return &pathRewrite{t, str(p["replacePrefixMatch"])}
	}
	return nil
}

// rewritePath is the Flex rule path for a Gateway API path match, and the
// route's destinationPath. Flex rewrites with capture groups: the
// upstream path is the destination path followed by what the rule's
// groups captured, so a match that must not rewrite captures nothing, a
// ReplacePrefixMatch captures the rest after the prefix, and a
// ReplaceFullPath has one empty group (the destination path alone).
func rewritePath(typ, value string, rw *pathRewrite) (rule, destPath string) {
	switch typ {
	case "Exact":
		rule = regexpQuote(value)
	case "RegularExpression":
		rule = nonCapturing(value)
	default:
		rule = prefixRegex(value)
	}
	if rw == nil {
		return rule, ""
	}
	destPath = strings.TrimRight(rw.value, "/")
	switch {
	case rw.typ == "ReplaceFullPath":
		return "(?:" + rule + ")()", destPath
	case typ == "PathPrefix" || typ == "":
		if p := strings.TrimRight(value, "/"); p != "" {
			return regexpQuote(p) + "(/.*)?", destPath
		}
		return "(/.*)", destPath
	}
	return rule, "" // ReplacePrefixMatch needs a PathPrefix match (the API server's CEL says so)
}

// nonCapturing turns a Gateway API path regular expression's groups into
// non-capturing ones: Flex would otherwise rewrite the upstream path to
// what they captured. An expression Go cannot parse is kept as written,
// for the compiler to refuse with its error.
func nonCapturing(src string) string {
	re, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return src
	}
	var strip func(r *syntax.Regexp) *syntax.Regexp
	strip = func(r *syntax.Regexp) *syntax.Regexp {
		for i, sub := range r.Sub {
			r.Sub[i] = strip(sub)
		}
		if r.Op == syntax.OpCapture {
			return r.Sub[0]
		}
		return r
	}
	return strip(re).String()
}

// gatewayHostRegex is hostRegex for Gateway API hostnames, whose wildcard
// covers one or more labels ("*.example.com" matches a.b.example.com),
// where an Ingress wildcard covers exactly one.
func gatewayHostRegex(h string) string {
	if strings.HasPrefix(h, "*.") {
		return `.+` + regexpQuote(h[1:])
	}
	return hostRegex(h)
}

// hostRank orders hostnames as the spec's precedence does: an exact
// hostname before any wildcard, longer before shorter; "" (any host) last.
func hostRank(h string) (n int, wildcard bool) {
	return len(h), strings.HasPrefix(h, "*.")
}

// routeStatus is what an HTTPRoute's status.parents should say.
type routeStatus struct {
	parents  []routeParent
	resolved bool
	// reason and msg are the first backendRef problem (ResolvedRefs=False).
	reason, msg string
	// unsupported says why a rule's filter is not served
	// (Accepted=False, UnsupportedValue).
	unsupported string
}

// fail records a backendRef problem; the first one is reported.
func (r *routeStatus) fail(reason, msg string) {
	if r.resolved {
		r.resolved, r.reason, r.msg = false, reason, msg
	}
}

// listenerAttachments counts the routes attached to each listener.
func listenerAttachments(st map[string]*routeStatus) map[*gatewayListener]int64 {
	out := map[*gatewayListener]int64{}
	keys := make([]string, 0, len(st))
	for k := range st {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, p := range st[k].parents {
			for _, l := range p.listeners {
				out[l]++
			}
			for _, l := range p.unserved {
				out[l]++
			}
		}
	}
	return out
}
