package kube

import (
	"fmt"
	"maps"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Controller names flexgw answers to in IngressClass.spec.controller and
// GatewayClass.spec.controllerName.
const (
	IngressController = "flexgw.io/ingress-controller"
	GatewayController = "flexgw.io/gateway-controller"
)

// genNamespace holds the ApiInstances derived from Ingresses and Gateways,
// apart from any user's resources (no Kubernetes namespace may contain a
// '.', so it cannot clash).
const genNamespace = "flexgw.generated"

// ingressAPI is the one ApiInstance every Ingress's routes hang off: they
// all share the ingress address and base path "/".
const ingressAPI = "ingress"

// Routing resources: Ingress, Gateway API, and what their backends
// resolve through.
var (
	gvrIngress       = schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"}
	gvrIngressClass  = schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingressclasses"}
	gvrService       = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	gvrEndpointSlice = schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}
	gvrSecret        = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	gvrGateway       = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}
	gvrGatewayClass  = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gatewayclasses"}
	gvrHTTPRoute     = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}
	gvrNamespace     = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
)

// genDoc is one Flex document derived from a routing resource.
type genDoc struct {
	name string // "namespace/Kind/name"
	doc  map[string]any
}

// routeEntry is one path of an Ingress or one match of an HTTPRoute,
// before ordering.
type routeEntry struct {
	owner string // "Ingress/ns/name" or "HTTPRoute/ns/name"
	api   string // the ApiInstance it hangs off (in genNamespace)
	rule  map[string]any
	// hostLen and wildcard rank the route's hostname: exact hostnames
	// first, longer first, then wildcards, then any host.
	hostLen  int
	wildcard bool
	exact    bool
	pathLen  int
	methods  bool
	// headerCount and queryCount are how many header and query
	// parameter matches the route has.
	headerCount, queryCount int
	// answer is the route's redirect or directResponse extension: it
	// answers by itself, dests unused.
	answer   map[string]any
	fallback bool // an Ingress defaultBackend: after every path
	dests    []map[string]any
	// destPath is the route's destinationPath (a URLRewrite's path).
	destPath string
	// headers are more of the route's config: the requestHeaders and
	// responseHeaders extensions, the timeout.
	headers map[string]any
	order   int
}

// hostRegex turns a Kubernetes hostname ("a.example.com", "*.example.com")
// into a Flex host rule; "" matches any host.
func hostRegex(h string) string {
	if h == "" {
		return ""
	}
	if strings.HasPrefix(h, "*.") {
		return `[^.]+` + regexp.QuoteMeta(h[1:])
	}
	return regexp.QuoteMeta(h)
}

// prefixRegex matches a path prefix segment-wise, as Ingress Prefix and
// Gateway API PathPrefix do: "/foo" matches /foo and /foo/bar, not /foobar.
// The group does not capture, so the upstream path is left as it is.
func prefixRegex(p string) string {
	p = strings.TrimRight(p, "/")
	if p == "" {
		return "/.*"
	}
	return regexp.QuoteMeta(p) + "(?:/.*)?"
}

// orderRoutes sorts by the precedence Ingress and Gateway API define:
// the hostname first (exact, then wildcard, longer first, then any host:
// a virtual host is chosen before its paths, as Envoy and nginx do), then
// exact paths, then longer prefixes, then matches with a method, then
// more header matches, then more query parameter matches; ties keep their
// input order (oldest resource first).
func orderRoutes(rs []*routeEntry) {
	for i, r := range rs {
		r.order = i
	}
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		switch {
		case a.fallback != b.fallback:
			return b.fallback
		case (a.hostLen > 0 && !a.wildcard) != (b.hostLen > 0 && !b.wildcard):
			return a.hostLen > 0 && !a.wildcard
		case a.hostLen != b.hostLen:
			return a.hostLen > b.hostLen
		case a.exact != b.exact:
			return a.exact
		case a.pathLen != b.pathLen:
			return a.pathLen > b.pathLen
		case a.methods != b.methods:
			return a.methods
		case a.headerCount != b.headerCount:
			return a.headerCount > b.headerCount
		case a.queryCount != b.queryCount:
			return a.queryCount > b.queryCount
		}
		return a.order < b.order
	})
}

// backend resolves a Service port to upstream addresses: the ready
// endpoints of its EndpointSlices (what an in-cluster controller routes
// to), or the Service's cluster DNS name when it has none.
func (s *Source) backend(ns, name string, port int64, portName string) (addrs []string, ok bool) {
	svcObj, found, _ := s.stores["K8sService"].GetByKey(ns + "/" + name)
	if !found {
		return nil, false
	}
	svc := svcObj.(*unstructured.Unstructured)
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	var sp map[string]any
	for _, p := range ports {
		m, _ := p.(map[string]any)
		if (port != 0 && toInt64(m["port"]) == port) || (portName != "" && m["name"] == portName) {
			sp = m
			break
		}
	}
	if sp == nil {
		return nil, false
	}
	servicePort := toInt64(sp["port"])
	spName := str(sp["name"])
	for _, o := range s.stores["EndpointSlice"].List() {
		es := o.(*unstructured.Unstructured)
		if es.GetNamespace() != ns || es.GetLabels()["kubernetes.io/service-name"] != name {
			continue
		}
		var target int64
		esPorts, _, _ := unstructured.NestedSlice(es.Object, "ports")
		for _, p := range esPorts {
			m, _ := p.(map[string]any)
			if str(m["name"]) == spName {
				target = toInt64(m["port"])
			}
		}
		if target == 0 {
			continue
		}
		eps, _, _ := unstructured.NestedSlice(es.Object, "endpoints")
		for _, e := range eps {
			m, _ := e.(map[string]any)
			if c, ok := m["conditions"].(map[string]any); ok {
				if r, ok := c["ready"].(bool); ok && !r {
					continue
				}
			}
			as, _ := m["addresses"].([]any)
			for _, a := range as {
				ip := str(a)
				if strings.Contains(ip, ":") {
					ip = "[" + ip + "]"
				}
				addrs = append(addrs, "http://"+ip+":"+strconv.FormatInt(target, 10))
			}
		}
	}
	sort.Strings(addrs)
	if len(addrs) == 0 {
		addrs = []string{fmt.Sprintf("http://%s.%s.svc:%d", name, ns, servicePort)}
	}
	return addrs, true
}

// serviceDoc is the Flex Service for a backend, named after it.
func serviceDoc(ns, name string, port int64, portName string, addrs []string) (string, genDoc) {
	p := portName
	if p == "" {
		p = strconv.FormatInt(port, 10)
	}
	svcName := "k8s." + name + "." + p
	spec := map[string]any{"address": addrs[0]}
	if len(addrs) > 1 {
		eps := make([]any, 0, len(addrs)-1)
		for _, a := range addrs[1:] {
			eps = append(eps, a)
		}
		spec["endpoints"] = eps
	}
	return svcName, genDoc{name: ns + "/Service/" + svcName, doc: flexDoc("Service", ns, svcName, spec)}
}

func flexDoc(kind, ns, name string, spec map[string]any) map[string]any {
	return map[string]any{
		"apiVersion": "gateway.mulesoft.com/v1alpha1", "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": ns}, "spec": spec,
	}
}

// routeDocs turns ordered route entries into route bindings on their
// ApiInstances. The binding names carry the order, as the compiler keeps
// bindings in the order given.
func routeDocs(rs []*routeEntry) []genDoc {
	orderRoutes(rs)
	var out []genDoc
	for i, r := range rs {
		name := fmt.Sprintf("route-%05d", i)
		// Ingress and Gateway API backends get the client's Host, as
		// every controller sends it (and Envoy does).
		r.headers = maps.Clone(r.headers)
		if r.headers == nil {
			r.headers = map[string]any{}
		}
		r.headers["preserveHost"] = true
		spec := map[string]any{
			"targetRef": map[string]any{"kind": "ApiInstance", "name": r.api, "namespace": genNamespace},
			"rules":     []any{r.rule},
		}
		if r.answer != nil {
			spec["policyRef"] = map[string]any{"name": "route"}
			cfg := maps.Clone(r.answer)
			maps.Copy(cfg, r.headers)
			delete(cfg, "hostRewrite")
			delete(cfg, "preserveHost")
			spec["config"] = cfg
		} else if len(r.dests) == 1 {
			spec["policyRef"] = map[string]any{"name": "route"}
			cfg := map[string]any{"destinationRef": r.dests[0]["destinationRef"]}
			if r.destPath != "" {
				cfg["destinationPath"] = r.destPath
			}
			maps.Copy(cfg, r.headers)
			spec["config"] = cfg
		} else {
			spec["policyRef"] = map[string]any{"name": "route-weighted"}
			routes := make([]any, len(r.dests))
			for j, d := range r.dests {
				if _, direct := d["directResponse"]; r.destPath != "" && !direct {
					d = maps.Clone(d)
					d["destinationPath"] = r.destPath
				}
				routes[j] = d
			}
			cfg := map[string]any{"routes": routes}
			maps.Copy(cfg, r.headers)
			spec["config"] = cfg
		}
		out = append(out, genDoc{name: genNamespace + "/PolicyBinding/" + name, doc: flexDoc("PolicyBinding", genNamespace, name, spec)})
	}
	return out
}

// weights scales Gateway API weights (0 to 1,000,000) to Flex's 1-100.
func weights(ws []int64) []int64 {
	var total int64
	for _, w := range ws {
		total += w
	}
	out := make([]int64, len(ws))
	for i, w := range ws {
		if total == 0 {
			out[i] = 1
			continue
		}
		out[i] = max(1, min(100, w*100/total))
	}
	return out
}

func regexpQuote(s string) string { return regexp.QuoteMeta(s) }
