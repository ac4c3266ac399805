package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// standIn does, for the suite's echo backends, what a cluster's
// controllers and kubelet would: it gives each Deployment its Pods, runs
// each Pod as an echo server in this process on an address of its own
// (added to the loopback device of the test's network namespace:
// EndpointSlices may not point at 127.0.0.0/8), marks Pods and
// Deployments ready, and writes an EndpointSlice per Service and Pod. It
// reconciles by polling, so objects the tests create or delete later are
// handled too.
type standIn struct {
	cs kubernetes.Interface
	// addIP makes an address local (ip addr add ... dev lo).
	addIP func(ip string) error

	mu     sync.Mutex
	pods   map[string]*echoPod // by namespace/name
	nextIP int
}

// managedBy labels the EndpointSlices the stand-in owns.
const managedBy = "conformance-standin.flexgw.io"

// echoPod is one stand-in Pod: HTTP servers on its own address, one per
// port a Service sends to, answering like the suite's echo-basic image.
type echoPod struct {
	ns, name, ip string
	srvs         map[int32]*http.Server
}

func (e *echoPod) close() {
	for _, srv := range e.srvs {
		_ = srv.Close()
	}
}

// listen starts the Pod's server on port unless it runs.
func (e *echoPod) listen(port int32) error {
	if e.srvs[port] != nil {
		return nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(e.ip, strconv.Itoa(int(port))))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: echoHandler(e.ns, e.name, strconv.Itoa(int(port))), ReadHeaderTimeout: 10 * time.Second}
	e.srvs[port] = srv
	go func() { _ = srv.Serve(l) }()
	return nil
}

func (s *standIn) run(ctx context.Context, t testing.TB) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var lastErr string
	for {
		if err := s.reconcile(ctx); err != nil && ctx.Err() == nil && err.Error() != lastErr {
			lastErr = err.Error()
			t.Logf("stand-in controller: %v", err)
		}
		select {
		case <-ctx.Done():
			s.mu.Lock()
			for _, p := range s.pods {
				p.close()
			}
			s.mu.Unlock()
			return
		case <-tick.C:
		}
	}
}

func (s *standIn) reconcile(ctx context.Context) error {
	deps, err := s.cs.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	pods, err := s.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	want := map[string]bool{}
	var errs []string
	for i := range deps.Items {
		d := &deps.Items[i]
		if d.DeletionTimestamp != nil {
			continue
		}
		if err := s.deployment(ctx, d, want); err != nil {
			errs = append(errs, err.Error())
		}
	}
	// Pods of Deployments that are gone (or scaled down) stop.
	for i := range pods.Items {
		p := &pods.Items[i]
		key := p.Namespace + "/" + p.Name
		if !want[key] && isOurs(p) {
			_ = s.cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
		}
	}
	s.mu.Lock()
	for key, p := range s.pods {
		if !want[key] {
			p.close()
			delete(s.pods, key)
		}
	}
	s.mu.Unlock()
	if err := s.endpointSlices(ctx); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func isOurs(p *corev1.Pod) bool {
	for _, o := range p.OwnerReferences {
		if o.Kind == "Deployment" {
			return true
		}
	}
	return false
}

// deployment creates and readies the Deployment's Pods, records them in
// want, and writes the Deployment's status.
func (s *standIn) deployment(ctx context.Context, d *appsv1.Deployment, want map[string]bool) error {
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	for i := int32(0); i < replicas; i++ {
		// Named like a ReplicaSet's Pods (deployment-hash-suffix): the
		// suite's weight checks take the Deployment from the name.
		name := fmt.Sprintf("%s-standin-%d", d.Name, i)
		want[d.Namespace+"/"+name] = true
		if err := s.pod(ctx, d, name); err != nil {
			return fmt.Errorf("pod %s/%s: %w", d.Namespace, name, err)
		}
	}
	st := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: replicas, UpdatedReplicas: replicas,
		ReadyReplicas: replicas, AvailableReplicas: replicas,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue,
			Reason: "MinimumReplicasAvailable", LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()}}}
	if d.Status.ObservedGeneration == st.ObservedGeneration && d.Status.ReadyReplicas == replicas && d.Status.Replicas == replicas {
		return nil
	}
	d.Status = st
	_, err := s.cs.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	return err
}

// pod makes sure the Pod exists, has its echo server, and is Ready.
func (s *standIn) pod(ctx context.Context, d *appsv1.Deployment, name string) error {
	p, err := s.cs.CoreV1().Pods(d.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		p = &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: d.Namespace, Labels: d.Spec.Template.Labels,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID}}},
			Spec: *d.Spec.Template.Spec.DeepCopy(),
		}
		p.Spec.NodeName = "standin"
		p, err = s.cs.CoreV1().Pods(d.Namespace).Create(ctx, p, metav1.CreateOptions{})
	}
	if err != nil {
		return err
	}
	if p.DeletionTimestamp != nil {
		return nil
	}
	e, err := s.echo(p)
	if err != nil {
		return err
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return nil
		}
	}
	now := metav1.Now()
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: e.ip, PodIPs: []corev1.PodIP{{IP: e.ip}},
		HostIP: e.ip, StartTime: &now}
	for _, c := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: c, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	_, err = s.cs.CoreV1().Pods(d.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	return err
}

// echo returns the Pod's echo servers, giving the Pod an address on the
// first call.
func (s *standIn) echo(p *corev1.Pod) (*echoPod, error) {
	key := p.Namespace + "/" + p.Name
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.pods[key]; e != nil {
		return e, nil
	}
	s.nextIP++
	ip := fmt.Sprintf("10.244.%d.%d", s.nextIP/250, s.nextIP%250+1)
	if err := s.addIP(ip); err != nil {
		return nil, err
	}
	e := &echoPod{ns: p.Namespace, name: p.Name, ip: ip, srvs: map[int32]*http.Server{}}
	s.pods[key] = e
	return e, nil
}

// echoHandler answers like the suite's echo-basic image: the request as
// JSON (path is the raw request URI), with the Pod and namespace that
// served it, and the response headers asked for in X-Echo-Set-Header.
func echoHandler(ns, pod, port string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, ok := strings.CutPrefix(r.URL.Path, "/status/"); ok {
			if n, err := strconv.Atoi(code); err == nil && n >= 100 && n < 600 {
				w.WriteHeader(n)
				return
			}
		}
		for _, list := range r.Header.Values("X-Echo-Set-Header") {
			for kv := range strings.SplitSeq(list, ",") {
				name, value, _ := strings.Cut(strings.TrimSpace(kv), ":")
				if prev := w.Header()[name]; len(prev) > 0 {
					prev[0] += "," + strings.TrimSpace(value)
				} else {
					w.Header()[name] = []string{value}
				}
			}
		}
		body, _ := json.MarshalIndent(map[string]any{
			"path": r.RequestURI, "host": r.Host, "method": r.Method, "proto": r.Proto,
			"headers": r.Header, "httpPort": port,
			"namespace": ns, "ingress": "", "service": "", "pod": pod,
		}, "", " ")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(body)
	})
}

// endpointSlices writes one EndpointSlice per Service and Pod it selects,
// starting the Pod's servers on the Service's target ports, and deletes
// the stale slices.
func (s *standIn) endpointSlices(ctx context.Context) error {
	svcs, err := s.cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	pods, err := s.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	have, err := s.cs.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelManagedBy + "=" + managedBy})
	if err != nil {
		return err
	}
	existing := map[string]*discoveryv1.EndpointSlice{}
	for i := range have.Items {
		es := &have.Items[i]
		existing[es.Namespace+"/"+es.Name] = es
	}
	keep := map[string]bool{}
	for i := range svcs.Items {
		svc := &svcs.Items[i]
		if len(svc.Spec.Selector) == 0 {
			continue
		}
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		for j := range pods.Items {
			p := &pods.Items[j]
			if p.Namespace != svc.Namespace || p.DeletionTimestamp != nil || !sel.Matches(labels.Set(p.Labels)) {
				continue
			}
			s.mu.Lock()
			e := s.pods[p.Namespace+"/"+p.Name]
			var err error
			for _, sp := range svc.Spec.Ports {
				if e != nil && err == nil {
					err = e.listen(targetPort(sp))
				}
			}
			s.mu.Unlock()
			if e == nil {
				continue
			}
			if err != nil {
				return fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err)
			}
			name := svc.Name + "-" + p.Name
			keep[svc.Namespace+"/"+name] = true
			if existing[svc.Namespace+"/"+name] != nil {
				continue
			}
			if err := s.createSlice(ctx, svc, p, name, e.ip); err != nil {
				return err
			}
		}
	}
	for key, es := range existing {
		if !keep[key] {
			_ = s.cs.DiscoveryV1().EndpointSlices(es.Namespace).Delete(ctx, es.Name, metav1.DeleteOptions{})
		}
	}
	return nil
}

// targetPort is the port a Service port sends to on its Pods (a named
// target port is not resolved: the suite's Services use numbers).
func targetPort(sp corev1.ServicePort) int32 {
	if sp.TargetPort.IntVal != 0 {
		return sp.TargetPort.IntVal
	}
	return sp.Port
}

func (s *standIn) createSlice(ctx context.Context, svc *corev1.Service, p *corev1.Pod, name, ip string) error {
	ready := true
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: svc.Namespace, Labels: map[string]string{
			discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: managedBy}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID}}},
	}
	for _, sp := range svc.Spec.Ports {
		port := targetPort(sp)
		es.Ports = append(es.Ports, discoveryv1.EndpointPort{Name: &sp.Name, Protocol: &sp.Protocol, AppProtocol: sp.AppProtocol, Port: &port})
	}
	_, err := s.cs.DiscoveryV1().EndpointSlices(svc.Namespace).Create(ctx, es, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
