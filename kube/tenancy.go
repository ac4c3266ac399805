package kube

import (
	"fmt"

	"github.com/flexgw/flexgw/config"
	"github.com/flexgw/flexgw/kube/crd"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Namespaces are tenants. A conf.d is one team's; a cluster holds many, and
// Flex's PolicyBinding may name an ApiInstance, Service, Ingress or HTTPRoute
// of any namespace (targetRef.namespace, a route's destinationRef.namespace)
// or select ApiInstances of every namespace (kind Selector). Left as is, a
// binding in namespace B could route A's API to B's Service and receive
// A's requests with the credentials A's policies add from A's Secrets, or
// put a policy on A's traffic. So, as the Gateway API does for its own
// cross-namespace references, a PolicyBinding outside the gateway's own
// namespace refers into another namespace only where a ReferenceGrant in
// that namespace allows PolicyBindings of its namespace; a Selector with no
// namespace selects in its own. The gateway's namespace (the chart's
// release namespace, which holds its admin token anyway) keeps Flex's
// gateway-wide meaning.

// flexGroup is the API group of Flex's kinds, as ReferenceGrants name it.
const flexGroup = "gateway.mulesoft.com"

// bindingRefs checks a PolicyBinding's references into other namespaces.
// It returns the binding to compile (a Selector narrowed to its namespace)
// or, when a reference is not granted, nil and why.
func (s *Source) bindingRefs(u *unstructured.Unstructured) (*unstructured.Unstructured, string) {
	own := u.GetNamespace()
	if own == s.opts.LeaseNamespace {
		return u, ""
	}
	granted := func(group, kind, ns, name string) bool {
		return s.refGranted(flexGroup, config.KindPolicyBinding, own, group, kind, ns, name)
	}
	tr, _, _ := unstructured.NestedMap(u.Object, "spec", "targetRef")
	kind, name, tns := str(tr["kind"]), str(tr["name"]), str(tr["namespace"])
	if kind == config.KindSelector && tns == "" {
		u = u.DeepCopy()
		_ = unstructured.SetNestedField(u.Object, own, "spec", "targetRef", "namespace")
		tns = own
	}
	if tns != "" && tns != own {
		var ok bool
		switch kind {
		case "", config.KindApiInstance, config.KindService:
			ok = (kind != config.KindService && granted(flexGroup, config.KindApiInstance, tns, name)) ||
				(kind != config.KindApiInstance && granted(flexGroup, config.KindService, tns, name))
		case config.KindSelector:
			ok = granted(flexGroup, config.KindApiInstance, tns, "")
		case "Ingress":
			ok = granted("networking.k8s.io", "Ingress", tns, name)
		case "HTTPRoute":
			ok = granted("gateway.networking.k8s.io", "HTTPRoute", tns, name)
		}
		if !ok {
			what := kind
			if what == "" {
				what = "ApiInstance or Service"
			}
			if name == "" {
				name = "*"
			}
			return nil, fmt.Sprintf("spec.targetRef: %s %s/%s is in another namespace, and no ReferenceGrant in namespace %s allows PolicyBindings of namespace %s to refer to it",
				what, tns, name, tns, own)
		}
	}
	cfg, _, _ := unstructured.NestedMap(u.Object, "spec", "config")
	dests := []struct {
		field string
		ref   any
	}{{"spec.config.destinationRef", cfg["destinationRef"]}}
	routes, _ := cfg["routes"].([]any)
	for i, r := range routes {
		m, _ := r.(map[string]any)
		dests = append(dests, struct {
			field string
			ref   any
		}{fmt.Sprintf("spec.config.routes[%d].destinationRef", i), m["destinationRef"]})
	}
	for _, d := range dests {
		m, _ := d.ref.(map[string]any)
		ns, name := str(m["namespace"]), str(m["name"])
		if ns != "" && ns != own && !granted(flexGroup, config.KindService, ns, name) {
			return nil, fmt.Sprintf("%s: Service %s/%s is in another namespace, and no ReferenceGrant in namespace %s allows PolicyBindings of namespace %s to refer to it",
				d.field, ns, name, ns, own)
		}
	}
	return u, ""
}

// refusedStatus is the status of a resource left out of the configuration
// because of a reference it may not make.
func refusedStatus(ref objRef, why string) desiredStatus {
	return desiredStatus{ref: ref, conds: []cond{
		{crd.ConditionAccepted, false, "RefNotPermitted", why},
		{crd.ConditionProgrammed, false, "RefNotPermitted", "not served: " + why},
	}}
}
