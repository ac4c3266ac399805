package kube

import (
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ingressClasses returns the IngressClass names whose controller is
// flexgw's, and whether one of them is the cluster's default.
func (s *Source) ingressClasses() (map[string]bool, bool) {
	names, def := map[string]bool{}, false
	st := s.stores["IngressClass"]
	if st == nil {
		return names, false
	}
	for _, o := range st.List() {
		u := o.(*unstructured.Unstructured)
		if c, _, _ := unstructured.NestedString(u.Object, "spec", "controller"); c == IngressController {
			names[u.GetName()] = true
			if u.GetAnnotations()["ingressclass.kubernetes.io/is-default-class"] == "true" {
				def = true
			}
		}
	}
	return names, def
}

// ingresses returns the Ingresses flexgw serves, oldest first.
func (s *Source) ingresses() []*unstructured.Unstructured {
	st := s.stores["Ingress"]
	if st == nil || s.opts.IngressAddress == "" {
		return nil
	}
	classes, def := s.ingressClasses()
	var out []*unstructured.Unstructured
	for _, o := range st.List() {
		u := o.(*unstructured.Unstructured)
		class, _, _ := unstructured.NestedString(u.Object, "spec", "ingressClassName")
		if class == "" {
			class = u.GetAnnotations()["kubernetes.io/ingress.class"]
		}
		if (class == "" && def) || classes[class] {
			out = append(out, u)
		}
	}
	sortByAge(out)
	return out
}

func sortByAge(us []*unstructured.Unstructured) {
	sort.SliceStable(us, func(i, j int) bool {
		a, b := us[i].GetCreationTimestamp(), us[j].GetCreationTimestamp()
		if !a.Equal(&b) {
			return a.Before(&b)
		}
		return us[i].GetNamespace()+"/"+us[i].GetName() < us[j].GetNamespace()+"/"+us[j].GetName()
	})
}

// ingressRoutes translates the served Ingresses into route entries on
// the ingress ApiInstance, the Flex Services of their backends, and the
// Flex rules each Ingress covers (for PolicyBindings that target it).
func (s *Source) ingressRoutes(svcDocs map[string]genDoc) (entries []*routeEntry, rulesOf map[string][]any) {
	rulesOf = map[string][]any{}
	for _, ing := range s.ingresses() {
		ns, owner := ing.GetNamespace(), "Ingress/"+ing.GetNamespace()+"/"+ing.GetName()
		dest := func(b map[string]any) []map[string]any {
			svc, _ := b["service"].(map[string]any)
			if svc == nil {
				return nil // resource backends are not supported
			}
			name := str(svc["name"])
			port, _ := svc["port"].(map[string]any)
			addrs, ok := s.backend(ns, name, toInt64(port["number"]), str(port["name"]))
			if !ok {
				return nil
			}
			svcName, doc := serviceDoc(ns, name, toInt64(port["number"]), str(port["name"]), addrs)
			svcDocs[doc.name] = doc
			return []map[string]any{{"destinationRef": map[string]any{"name": svcName, "namespace": ns}, "weight": int64(100)}}
		}
		rules, _, _ := unstructured.NestedSlice(ing.Object, "spec", "rules")
		for _, r := range rules {
			rm, _ := r.(map[string]any)
			host := hostRegex(str(rm["host"]))
			http, _ := rm["http"].(map[string]any)
			paths, _ := http["paths"].([]any)
			for _, p := range paths {
				pm, _ := p.(map[string]any)
				b, _ := pm["backend"].(map[string]any)
				d := dest(b)
				if d == nil {
					continue
				}
				path := str(pm["path"])
				if path == "" {
					path = "/"
				}
				e := &routeEntry{owner: owner, api: ingressAPI, dests: d, pathLen: len(path)}
				e.hostLen, e.wildcard = hostRank(str(rm["host"]))
				rule := map[string]any{}
				if str(pm["pathType"]) == "Exact" {
					e.exact = true
					rule["path"] = regexpQuote(path)
				} else {
					rule["path"] = prefixRegex(path)
				}
				if host != "" {
					rule["host"] = host
				}
				e.rule = rule
				entries = append(entries, e)
				rulesOf[owner] = append(rulesOf[owner], rule)
			}
		}
		if b, ok, _ := unstructured.NestedMap(ing.Object, "spec", "defaultBackend"); ok {
			if d := dest(b); d != nil {
				rule := map[string]any{"path": "/.*"}
				entries = append(entries, &routeEntry{owner: owner, api: ingressAPI, dests: d, fallback: true, rule: rule})
				rulesOf[owner] = append(rulesOf[owner], rule)
			}
		}
	}
	return entries, rulesOf
}

// ingressTLSAPI is the ApiInstance serving the same routes over TLS on
// the ingress TLS address, with every served Ingress's certificates.
const ingressTLSAPI = "ingress-tls"

// ingressCerts returns the certificates the served Ingresses' spec.tls
// name, oldest Ingress first (its first certificate is served to clients
// whose SNI no certificate covers). A Secret that cannot be used is left
// out, logged, and returned as a Warning Event on the Ingress: an
// Ingress's status has no conditions to say it in.
func (s *Source) ingressCerts() ([]certKey, []warnEvent) {
	var certs []certKey
	var events []warnEvent
	for _, ing := range s.ingresses() {
		entries, _, _ := unstructured.NestedSlice(ing.Object, "spec", "tls")
		for _, e := range entries {
			m, _ := e.(map[string]any)
			name := str(m["secretName"])
			if name == "" {
				continue // hosts without a Secret: the default certificate
			}
			c, p := s.tlsSecret(ing.GetNamespace(), name)
			if p != nil {
				s.log.Warn("Ingress TLS certificate not served", "ingress", ing.GetNamespace()+"/"+ing.GetName(), "reason", p.reason, "error", p.msg)
				events = append(events, warnEvent{obj: ing, kind: "Ingress", apiVersion: "networking.k8s.io/v1", reason: p.reason,
					msg: fmt.Sprintf("spec.tls secretName %s: %s; the certificate is not served", name, p.msg)})
				continue
			}
			certs = addCert(certs, c)
		}
	}
	return certs, events
}
