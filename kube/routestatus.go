package kube

import (
	"fmt"

	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// gwCond is a Gateway API condition (metav1.Condition's shape).
func gwCond(typ string, ok bool, reason, msg string, gen int64) map[string]any {
	st := "False"
	if ok {
		st = "True"
	}
	return map[string]any{"type": typ, "status": st, "reason": reason, "message": msg,
		"observedGeneration": gen, "lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}
}

func refOf(u *unstructured.Unstructured, kind string) objRef {
	gvr := map[string]objRef{
		"Ingress": {gvr: gvrIngress}, "Gateway": {gvr: gvrGateway}, "HTTPRoute": {gvr: gvrHTTPRoute}, "GatewayClass": {gvr: gvrGatewayClass},
	}[kind].gvr
	return objRef{gvr: gvr, kind: kind, namespace: u.GetNamespace(), name: u.GetName(), generation: u.GetGeneration()}
}

// routingStatus builds the status of the served Ingresses, GatewayClasses,
// Gateways and HTTPRoutes. programmed says whether the configuration
// holding them serves.
func (s *Source) routingStatus(ls []*gatewayListener, rs map[string]*routeStatus, programmed bool, why string) []desiredStatus {
	var out []desiredStatus
	progReason := "Programmed"
	if !programmed {
		progReason = "Pending"
	}
	if s.opts.PublishAddress != "" {
		for _, ing := range s.ingresses() {
			lb := map[string]any{"ip": s.opts.PublishAddress}
			out = append(out, desiredStatus{ref: refOf(ing, "Ingress"), raw: map[string]any{"loadBalancer": map[string]any{"ingress": []any{lb}}}})
		}
	}
	if st := s.stores["GatewayClass"]; st != nil {
		for name := range s.ourGatewayClasses() {
			o, ok, _ := st.GetByKey(name)
			if !ok {
				continue
			}
			u := o.(*unstructured.Unstructured)
			out = append(out, desiredStatus{ref: refOf(u, "GatewayClass"), raw: map[string]any{
				"conditions": []any{gwCond("Accepted", true, "Accepted", "", u.GetGeneration())}}})
		}
	}
	attached := listenerAttachments(rs)
	byGateway := map[*unstructured.Unstructured][]*gatewayListener{}
	var gws []*unstructured.Unstructured
	for _, l := range ls {
		if _, ok := byGateway[l.gateway]; !ok {
			gws = append(gws, l.gateway)
		}
		byGateway[l.gateway] = append(byGateway[l.gateway], l)
	}
	for _, gw := range gws {
		gen := gw.GetGeneration()
		var lsStatus []any
		// Gateway API: a Gateway with an invalid listener reports
		// ListenersNotValid, and is not Accepted when none is valid.
		invalid := 0
		for _, l := range byGateway[gw] {
			kinds := []any{map[string]any{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}}
			acc := gwCond("Accepted", true, "Accepted", "", gen)
			if l.accepted != nil || l.noHTTPRoutes {
				kinds = []any{}
			}
			if l.accepted != nil {
				acc = gwCond("Accepted", false, l.accepted.reason, l.accepted.msg, gen)
				invalid++
			}
			res := gwCond("ResolvedRefs", true, "ResolvedRefs", "", gen)
			if p := l.kindsProblem; p != nil {
				res = gwCond("ResolvedRefs", false, p.reason, p.msg, gen)
			} else if l.refs != nil {
				res = gwCond("ResolvedRefs", false, l.refs.reason, l.refs.msg, gen)
			}
			prog := gwCond("Programmed", programmed, progReason, why, gen)
			if !l.served {
				prog = gwCond("Programmed", false, "Invalid", "not served: see the Accepted and ResolvedRefs conditions", gen)
			}
			conds := []any{acc, prog, res}
			if l.conflict != "" {
				conds = append(conds, gwCond("Conflicted", true, l.conflict, l.accepted.msg, gen))
			} else {
				conds = append(conds, gwCond("Conflicted", false, "NoConflicts", "", gen))
			}
			lsStatus = append(lsStatus, map[string]any{"name": l.name, "supportedKinds": kinds, "attachedRoutes": attached[l], "conditions": conds})
		}
		gwAcc := gwCond("Accepted", true, "Accepted", "", gen)
		if n := len(byGateway[gw]); invalid > 0 {
			gwAcc = gwCond("Accepted", invalid < n, "ListenersNotValid", fmt.Sprintf("%d of %d listeners are not accepted: see their conditions", invalid, n), gen)
		}
		st := map[string]any{
			"conditions": []any{gwAcc, gwCond("Programmed", programmed, progReason, why, gen)},
			"listeners":  lsStatus,
		}
		if s.opts.PublishAddress != "" {
			st["addresses"] = []any{map[string]any{"type": "IPAddress", "value": s.opts.PublishAddress}}
		}
		out = append(out, desiredStatus{ref: refOf(gw, "Gateway"), raw: st})
	}
	for key, r := range rs {
		o, ok, _ := s.stores["HTTPRoute"].GetByKey(key[len("HTTPRoute/"):])
		if !ok {
			continue
		}
		u := o.(*unstructured.Unstructured)
		gen := u.GetGeneration()
		var ps []any
		for _, p := range r.parents {
			ref := map[string]any{}
			for k, v := range p.ref {
				ref[k] = v
			}
			if _, ok := ref["group"]; !ok {
				ref["group"] = "gateway.networking.k8s.io"
			}
			if _, ok := ref["kind"]; !ok {
				ref["kind"] = "Gateway"
			}
			acc := gwCond("Accepted", true, "Accepted", "", gen)
			if p.reason != "" {
				acc = gwCond("Accepted", false, p.reason, p.msg, gen)
			} else if r.unsupported != "" {
				acc = gwCond("Accepted", false, "UnsupportedValue", "a rule is not served: "+r.unsupported, gen)
			}
			res := gwCond("ResolvedRefs", true, "ResolvedRefs", "", gen)
			if !r.resolved {
				res = gwCond("ResolvedRefs", false, r.reason, r.msg, gen)
			}
			ps = append(ps, map[string]any{"parentRef": ref, "controllerName": GatewayController, "conditions": []any{acc, res}})
		}
		out = append(out, desiredStatus{ref: refOf(u, "HTTPRoute"), raw: map[string]any{"parents": ps}})
	}
	return out
}
