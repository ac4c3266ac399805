package kube

import (
	"context"
	"encoding/json"
	"reflect"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaseName is the Lease whose holder writes status; the other replicas
// compute the same conditions and wait.
const LeaseName = "flexgw-status"

// cond is one condition as the gateway decides it.
type cond struct {
	typ    string
	ok     bool
	reason string
	msg    string
}

// desiredStatus is what one object's status should say.
type desiredStatus struct {
	ref   objRef
	conds []cond
	// raw, when set, is the whole status to write (Ingress, Gateway API
	// kinds), compared without lastTransitionTime.
	raw map[string]any
}

// statusWriter patches each object's status to the desired one while this
// replica holds the Lease. It compares against the informer's copy, so an
// object already right costs nothing and a new leader only fixes what
// differs.
type statusWriter struct {
	s       *Source
	wake    chan struct{}
	mu      sync.Mutex
	desired map[string]desiredStatus
	leading bool
	// written is the patch last sent per object, so a patch the informer
	// has not echoed yet is not sent twice.
	written map[string]string
	// events are the Warning Events to post; emitted, those this leader
	// has posted (or found already posted).
	events  []warnEvent
	emitted map[string]bool
}

func newStatusWriter(s *Source) *statusWriter {
	return &statusWriter{s: s, wake: make(chan struct{}, 1), desired: map[string]desiredStatus{}, written: map[string]string{}, emitted: map[string]bool{}}
}

func (w *statusWriter) set(d map[string]desiredStatus) {
	w.mu.Lock()
	w.desired = d
	w.mu.Unlock()
	w.kick()
}

func (w *statusWriter) kick() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run campaigns for the Lease until ctx ends, writing status while leading.
func (w *statusWriter) run(ctx context.Context) {
	o := w.s.opts
	lock, err := resourcelock.NewFromKubeconfig(resourcelock.LeasesResourceLock, o.LeaseNamespace, LeaseName,
		resourcelock.ResourceLockConfig{Identity: o.Identity}, w.s.rest, o.LeaseDuration*2/3)
	if err != nil {
		w.s.log.Error("status lease unavailable; this replica writes no status", "error", err)
		return
	}
	for ctx.Err() == nil {
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   o.LeaseDuration,
			RenewDeadline:   o.LeaseDuration * 2 / 3,
			RetryPeriod:     o.LeaseDuration / 7,
			ReleaseOnCancel: true,
			Name:            LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					w.s.log.Info("writing status", "lease", o.LeaseNamespace+"/"+LeaseName, "identity", o.Identity)
					w.mu.Lock()
					w.written = map[string]string{}
					w.emitted = map[string]bool{}
					w.mu.Unlock()
					w.lead(ctx)
				},
				OnStoppedLeading: func() { w.s.log.Info("stopped writing status", "identity", o.Identity) },
			},
		})
	}
}

// lead writes status on every change until leadership is lost. A periodic
// pass catches writes that failed.
func (w *statusWriter) lead(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		w.writeAll(ctx)
		w.postEvents(ctx)
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-t.C:
			w.mu.Lock()
			w.written = map[string]string{}
			w.mu.Unlock()
		}
	}
}

func (w *statusWriter) writeAll(ctx context.Context) {
	w.mu.Lock()
	desired := w.desired
	w.mu.Unlock()
	for key, d := range desired {
		if ctx.Err() != nil {
			return
		}
		store := w.s.stores[d.ref.kind]
		if store == nil {
			continue
		}
		skey := d.ref.name
		if d.ref.namespace != "" {
			skey = d.ref.namespace + "/" + d.ref.name
		}
		obj, ok, _ := store.GetByKey(skey)
		if !ok {
			continue
		}
		cur := obj.(*unstructured.Unstructured)
		if cur.GetGeneration() != d.ref.generation {
			continue // changed since; the next report covers it
		}
		patch, same := statusPatch(cur, d)
		if d.raw != nil {
			patch, same = rawPatch(cur, d.raw)
		}
		if same {
			continue
		}
		w.mu.Lock()
		dup := w.written[key] == string(patch)
		w.mu.Unlock()
		if dup {
			continue
		}
		var ri dynamic.ResourceInterface = w.s.client.Resource(d.ref.gvr)
		if d.ref.namespace != "" {
			ri = w.s.client.Resource(d.ref.gvr).Namespace(d.ref.namespace)
		}
		_, err := ri.Patch(ctx, d.ref.name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "flexgw"}, "status")
		if err != nil {
			w.s.log.Warn("status write failed", "object", key, "error", err)
			continue
		}
		w.mu.Lock()
		w.written[key] = string(patch)
		w.mu.Unlock()
	}
}

// statusPatch builds the merge patch for d, keeping each condition's
// lastTransitionTime while its status stays the same; same reports that
// the object already says all of it.
func statusPatch(cur *unstructured.Unstructured, d desiredStatus) ([]byte, bool) {
	old := map[string]map[string]any{}
	conds, _, _ := unstructured.NestedSlice(cur.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok {
			if t, ok := m["type"].(string); ok {
				old[t] = m
			}
		}
	}
	og, _, _ := unstructured.NestedInt64(cur.Object, "status", "observedGeneration")
	same := og == d.ref.generation && len(old) == len(d.conds)
	now := time.Now().UTC().Format(time.RFC3339)
	out := make([]any, 0, len(d.conds))
	for _, c := range d.conds {
		st := "False"
		if c.ok {
			st = "True"
		}
		ltt := now
		prev := old[c.typ]
		if prev != nil && prev["status"] == st {
			if t, ok := prev["lastTransitionTime"].(string); ok {
				ltt = t
			}
		}
		if prev == nil || prev["status"] != st || prev["reason"] != c.reason || str(prev["message"]) != c.msg ||
			toInt64(prev["observedGeneration"]) != d.ref.generation {
			same = false
		}
		m := map[string]any{"type": c.typ, "status": st, "reason": c.reason, "message": c.msg,
			"lastTransitionTime": ltt, "observedGeneration": d.ref.generation}
		out = append(out, m)
	}
	b, _ := json.Marshal(map[string]any{"status": map[string]any{"observedGeneration": d.ref.generation, "conditions": out}})
	return b, same
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func toInt64(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	case int:
		return int64(n)
	}
	return 0
}

// rawPatch is the merge patch writing status want; same reports that the
// object's status already says it, timestamps aside.
func rawPatch(cur *unstructured.Unstructured, want map[string]any) ([]byte, bool) {
	b, _ := json.Marshal(map[string]any{"status": want})
	var have, norm any
	if st, ok := cur.Object["status"]; ok {
		hb, _ := json.Marshal(st)
		_ = json.Unmarshal(hb, &have)
	}
	wb, _ := json.Marshal(want)
	_ = json.Unmarshal(wb, &norm)
	return b, reflect.DeepEqual(stripTimes(have), stripTimes(norm))
}

// stripTimes drops lastTransitionTime keys, recursively.
func stripTimes(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if k != "lastTransitionTime" {
				out[k] = stripTimes(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = stripTimes(e)
		}
		return out
	}
	return v
}
