package kube

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var gvrEvent = schema.GroupVersionResource{Version: "v1", Resource: "events"}

// maxEventsPerPass bounds the Events one status pass posts, so a thousand
// broken Ingresses cannot flood the API server at once; the rest follow on
// the next pass (every change, and every 10 s).
const maxEventsPerPass = 20

// warnEvent is a problem to report as a Warning Event on the object it
// concerns, where the object's status has no place to say it.
type warnEvent struct {
	obj        *unstructured.Unstructured
	kind       string
	apiVersion string
	reason     string
	msg        string
}

// name is the Event's name: the object's, and a hash of the object's UID
// and the problem. One problem is one Event however often it is seen and
// whichever replica leads: posting it again is refused as AlreadyExists.
func (e warnEvent) name() string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%s", e.obj.GetUID(), e.reason, e.msg)
	n := e.obj.GetName()
	if len(n) > 200 {
		n = n[:200]
	}
	return fmt.Sprintf("%s.flexgw-%016x", n, h.Sum64())
}

func (w *statusWriter) setEvents(es []warnEvent) {
	w.mu.Lock()
	w.events = es
	w.mu.Unlock()
	w.kick()
}

// postEvents posts the Events not posted yet; only the status writer (the
// Lease holder) calls it, so replicas do not each post the same problem.
func (w *statusWriter) postEvents(ctx context.Context) {
	w.mu.Lock()
	es := w.events
	w.mu.Unlock()
	posted := 0
	for _, e := range es {
		name := e.name()
		key := e.obj.GetNamespace() + "/" + name
		w.mu.Lock()
		done := w.emitted[key]
		w.mu.Unlock()
		if done || ctx.Err() != nil {
			continue
		}
		if posted == maxEventsPerPass {
			return
		}
		posted++
		now := time.Now().UTC().Format(time.RFC3339)
		ev := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Event",
			"metadata": map[string]any{"name": name, "namespace": e.obj.GetNamespace()},
			"involvedObject": map[string]any{
				"apiVersion": e.apiVersion, "kind": e.kind, "name": e.obj.GetName(), "namespace": e.obj.GetNamespace(),
				"uid": string(e.obj.GetUID()), "resourceVersion": e.obj.GetResourceVersion(),
			},
			"reason": e.reason, "message": e.msg, "type": "Warning", "count": int64(1),
			"firstTimestamp": now, "lastTimestamp": now,
			"source":             map[string]any{"component": "flexgw"},
			"reportingComponent": IngressController, "reportingInstance": w.s.opts.Identity,
		}}
		_, err := w.s.client.Resource(gvrEvent).Namespace(e.obj.GetNamespace()).Create(ctx, ev, metav1.CreateOptions{FieldManager: "flexgw"})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			w.s.log.Warn("event not posted", "object", e.kind+"/"+e.obj.GetNamespace()+"/"+e.obj.GetName(), "reason", e.reason, "error", err)
			continue
		}
		w.mu.Lock()
		w.emitted[key] = true
		w.mu.Unlock()
	}
}
