// Package kube is the agent's Kubernetes configuration source: client-go
// informers watch Flex's four kinds as custom resources (and, in ingress.go
// and gatewayapi.go, Ingress and Gateway API routes), turn the objects into
// the same YAML documents a conf.d directory holds, and hand them to the
// agent's one compile path. What the agent reports back becomes each
// object's status, written by the one replica holding a Lease.
//
// Every replica watches and serves; only status writing needs a leader.
package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/flexgw/flexgw/config"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/kube/crd"
	"go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// Options configure a Source.
type Options struct {
	// Kubeconfig is a kubeconfig file; empty means the in-cluster config.
	Kubeconfig string
	// Namespace limits the watch to one namespace; empty watches all.
	Namespace string
	// Selector is a label selector the watched Flex resources must match.
	Selector string
	// Identity names this replica in the status Lease (default: hostname).
	Identity string
	// LeaseNamespace holds the status Lease (default: $POD_NAMESPACE, then
	// Namespace, then "default").
	LeaseNamespace string
	// LeaseDuration is how long a silent status writer keeps the Lease
	// (default 15s).
	LeaseDuration time.Duration
	// IngressAddress is where Ingresses of flexgw's class are served
	// (protocol://host:port); empty serves no Ingress.
	IngressAddress string
	// IngressTLSAddress is where Ingresses with spec.tls are also served
	// over TLS (https://host:port), with their Secrets' certificates;
	// empty serves no Ingress over TLS.
	IngressTLSAddress string
	// GatewayHost is the host Gateway listeners bind (default 0.0.0.0).
	GatewayHost string
	// PublishAddress is the IP written into Ingress and Gateway status
	// (the Service's address); empty writes none.
	PublishAddress string
	Logger         *slog.Logger
}

// Flex's kinds, in the order their documents are compiled. Configuration
// is read at v1beta1, which every Configuration converts to.
var flexKinds = []struct {
	kind string
	gvr  schema.GroupVersionResource
}{
	{config.KindConfiguration, schema.GroupVersionResource{Group: "gateway.mulesoft.com", Version: "v1beta1", Resource: "configurations"}},
	{config.KindService, schema.GroupVersionResource{Group: "gateway.mulesoft.com", Version: "v1alpha1", Resource: "services"}},
	{config.KindApiInstance, schema.GroupVersionResource{Group: "gateway.mulesoft.com", Version: "v1alpha1", Resource: "apiinstances"}},
	{config.KindPolicyBinding, schema.GroupVersionResource{Group: "gateway.mulesoft.com", Version: "v1alpha1", Resource: "policybindings"}},
}

// Source watches the cluster and implements agent.Source.
type Source struct {
	opts    Options
	log     *slog.Logger
	client  dynamic.Interface
	rest    *rest.Config
	factory dynamicinformer.DynamicSharedInformerFactory
	routing dynamicinformer.DynamicSharedInformerFactory
	classes dynamicinformer.DynamicSharedInformerFactory
	secrets dynamicinformer.DynamicSharedInformerFactory
	// tlsSecrets lists the kubernetes.io/tls Secrets (tls.go).
	tlsSecrets dynamicinformer.DynamicSharedInformerFactory
	stores     map[string]cache.Store // by kind
	cancel     context.CancelFunc
	done       sync.WaitGroup

	mu       sync.Mutex
	onChange func()
	// dirty records a change seen before Notify, so it is not lost
	// between the agent's first load and its watch starting.
	dirty bool
	// pending is what the last Files call returned, by file name.
	pending map[string]objRef
	// refused is the status of the objects the last Files left out for a
	// reference they may not make (tenancy.go), by object key.
	refused map[string]desiredStatus
	// served is the generation each object has in the serving snapshot.
	served map[string]int64
	status *statusWriter
	// routing is the status the served routing resources should report,
	// computed by the last Files.
	routingLs []*gatewayListener
	routingRs map[string]*routeStatus
	// events are the Warning Events the last Files found (events.go).
	events []warnEvent
}

// objRef is one object behind a compiled document.
type objRef struct {
	gvr        schema.GroupVersionResource
	kind       string
	namespace  string
	name       string
	generation int64
}

func (o objRef) key() string { return o.kind + "/" + o.namespace + "/" + o.name }

// RESTConfig loads a kubeconfig file, or the in-cluster config when path
// is empty.
func RESTConfig(path string) (*rest.Config, error) {
	if path == "" {
		c, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config (give --kubeconfig outside a pod): %w", err)
		}
		return c, nil
	}
	c, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return c, nil
}

// New connects to the API server, starts the informers and waits until
// their caches hold every object, so the first Files is complete.
func New(ctx context.Context, o Options) (*Source, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Identity == "" {
		o.Identity, _ = os.Hostname()
	}
	if o.LeaseNamespace == "" {
		o.LeaseNamespace = os.Getenv("POD_NAMESPACE")
	}
	if o.LeaseNamespace == "" {
		o.LeaseNamespace = o.Namespace
	}
	if o.LeaseNamespace == "" {
		o.LeaseNamespace = "default"
	}
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = 15 * time.Second
	}
	if o.GatewayHost == "" {
		o.GatewayHost = "0.0.0.0"
	}
	cfg, err := RESTConfig(o.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = "flexgw"
	// 1,000 objects change at once in a rollout; the default 5 QPS would
	// take minutes to write their status.
	cfg.QPS, cfg.Burst = 200, 400
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	s := &Source{
		opts: o, log: o.Logger.With("component", "kubernetes"), client: client, rest: cfg,
		stores: map[string]cache.Store{}, pending: map[string]objRef{}, served: map[string]int64{},
	}
	s.status = newStatusWriter(s)
	s.factory = dynamicinformer.NewFilteredDynamicSharedInformerFactory(client, 0, o.Namespace, func(lo *metav1.ListOptions) {
		lo.LabelSelector = o.Selector
	})
	for _, k := range flexKinds {
		inf := s.factory.ForResource(k.gvr).Informer()
		if _, err := inf.AddEventHandler(s.handler()); err != nil {
			return nil, err
		}
		s.stores[k.kind] = inf.GetStore()
	}
	// Routing resources and what backends resolve through: namespaced
	// ones with the namespace filter but not the label selector (which
	// chooses Flex resources), classes cluster-wide. A kind the cluster
	// does not serve (Gateway API without its CRDs) is not watched.
	s.routing = dynamicinformer.NewFilteredDynamicSharedInformerFactory(client, 0, o.Namespace, nil)
	s.classes = dynamicinformer.NewFilteredDynamicSharedInformerFactory(client, 0, "", nil)
	// Only the Secrets labelled as variables (variables.go) are listed and
	// cached, not every Secret of the cluster.
	s.secrets = dynamicinformer.NewFilteredDynamicSharedInformerFactory(client, 0, o.Namespace, func(lo *metav1.ListOptions) {
		lo.LabelSelector = VariablesLabel + "=true"
	})
	sec := s.secrets.ForResource(gvrSecret).Informer()
	if _, err := sec.AddEventHandler(s.handler()); err != nil {
		return nil, err
	}
	s.stores["Secret"] = sec.GetStore()
	// Certificates of Ingresses and Gateways: only kubernetes.io/tls
	// Secrets are listed and cached (tls.go).
	s.tlsSecrets = dynamicinformer.NewFilteredDynamicSharedInformerFactory(client, 0, o.Namespace, func(lo *metav1.ListOptions) {
		lo.FieldSelector = "type=" + tlsSecretType
	})
	tsec := s.tlsSecrets.ForResource(gvrSecret).Informer()
	if _, err := tsec.AddEventHandler(s.handler()); err != nil {
		return nil, err
	}
	s.stores["TLSSecret"] = tsec.GetStore()
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes discovery: %w", err)
	}
	for _, r := range []struct {
		kind    string
		gvr     schema.GroupVersionResource
		factory dynamicinformer.DynamicSharedInformerFactory
	}{
		{"K8sService", gvrService, s.routing}, {"EndpointSlice", gvrEndpointSlice, s.routing},
		{"Ingress", gvrIngress, s.routing}, {"IngressClass", gvrIngressClass, s.classes},
		{"Gateway", gvrGateway, s.routing}, {"HTTPRoute", gvrHTTPRoute, s.routing}, {"GatewayClass", gvrGatewayClass, s.classes},
		{"ReferenceGrant", gvrReferenceGrant, s.routing}, {"Namespace", gvrNamespace, s.classes},
	} {
		if !served(disc, r.gvr) {
			s.log.Info("not watched: the API server does not serve it", "resource", r.gvr.Resource+"."+r.gvr.Group)
			continue
		}
		inf := r.factory.ForResource(r.gvr).Informer()
		if _, err := inf.AddEventHandler(s.handler()); err != nil {
			return nil, err
		}
		s.stores[r.kind] = inf.GetStore()
	}
	rctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	sctx, scancel := context.WithTimeout(ctx, 2*time.Minute)
	defer scancel()
	for _, f := range []dynamicinformer.DynamicSharedInformerFactory{s.factory, s.routing, s.classes, s.secrets, s.tlsSecrets} {
		f.Start(rctx.Done())
		for gvr, ok := range f.WaitForCacheSync(sctx.Done()) {
			if !ok {
				s.Close()
				return nil, fmt.Errorf("kubernetes: cannot list %s (are the CRDs installed and may this identity list them?)", gvr.Resource+"."+gvr.Group)
			}
		}
	}
	s.done.Add(1)
	go func() { defer s.done.Done(); s.status.run(rctx) }()
	return s, nil
}

// Close stops the informers and the status writer (releasing its Lease).
func (s *Source) Close() {
	s.cancel()
	s.factory.Shutdown()
	s.routing.Shutdown()
	s.classes.Shutdown()
	s.secrets.Shutdown()
	s.tlsSecrets.Shutdown()
	s.done.Wait()
}

// Name implements agent.Source.
func (s *Source) Name() string { return "kubernetes" }

// Notify implements agent.Source.
func (s *Source) Notify(onChange func()) func() {
	s.mu.Lock()
	s.onChange = onChange
	dirty := s.dirty
	s.dirty = false
	s.mu.Unlock()
	if dirty {
		onChange()
	}
	return func() {
		s.mu.Lock()
		s.onChange = nil
		s.mu.Unlock()
	}
}

func (s *Source) changed() {
	s.mu.Lock()
	f := s.onChange
	if f == nil {
		s.dirty = true
	}
	s.mu.Unlock()
	if f != nil {
		f()
	}
}

// handler reloads on every change but the status writes: an update that
// changes neither generation nor labels is one.
func (s *Source) handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { s.changed() },
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*unstructured.Unstructured)
			n, ok2 := newObj.(*unstructured.Unstructured)
			if ok1 && ok2 && o.GetGeneration() == n.GetGeneration() && o.GetGeneration() != 0 &&
				labelsEqual(o.GetLabels(), n.GetLabels()) {
				s.status.kick() // maybe a replica's status write to check
				return
			}
			s.changed()
		},
		DeleteFunc: func(any) { s.changed() },
	}
}

func labelsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// Files implements agent.Source: every watched object as a document named
// "namespace/Kind/name", in a stable order.
func (s *Source) Files() []config.File {
	var files []config.File
	pending := map[string]objRef{}
	refused := map[string]desiredStatus{}
	// Ingresses and HTTPRoutes first: PolicyBindings may target them.
	svcDocs := map[string]genDoc{}
	ingEntries, rulesOf := s.ingressRoutes(svcDocs)
	var ingCerts []certKey
	var events []warnEvent
	if s.opts.IngressTLSAddress != "" && len(ingEntries) > 0 {
		ingCerts, events = s.ingressCerts()
	}
	if len(ingCerts) > 0 {
		// The same routes again on the TLS address.
		for _, e := range ingEntries[:len(ingEntries):len(ingEntries)] {
			c := *e
			c.api = ingressTLSAPI
			ingEntries = append(ingEntries, &c)
		}
	}
	ls, apis := s.gatewayListeners()
	rtEntries, rtRules, rtStatus := s.httpRoutes(ls, svcDocs)
	// The ApiInstances serving each Ingress and HTTPRoute, in order of
	// first appearance.
	apiOf := map[string][]string{}
	for _, e := range append(append([]*routeEntry{}, ingEntries...), rtEntries...) {
		if !slices.Contains(apiOf[e.owner], e.api) {
			apiOf[e.owner] = append(apiOf[e.owner], e.api)
		}
	}
	for k, v := range rtRules {
		rulesOf[k] = v
	}
	vars := s.variables()
	for _, k := range flexKinds {
		objs := s.stores[k.kind].List()
		sort.Slice(objs, func(i, j int) bool {
			a, b := objs[i].(*unstructured.Unstructured), objs[j].(*unstructured.Unstructured)
			if a.GetNamespace() != b.GetNamespace() {
				return a.GetNamespace() < b.GetNamespace()
			}
			return a.GetName() < b.GetName()
		})
		for _, o := range objs {
			u := o.(*unstructured.Unstructured)
			ref := objRef{gvr: k.gvr, kind: k.kind, namespace: u.GetNamespace(), name: u.GetName(), generation: u.GetGeneration()}
			name := u.GetNamespace() + "/" + k.kind + "/" + u.GetName()
			docs := []*unstructured.Unstructured{u}
			if k.kind == config.KindPolicyBinding {
				var why string
				if u, why = s.bindingRefs(u); u == nil {
					refused[ref.key()] = refusedStatus(ref, why)
					continue
				}
				if docs = retarget(u, apiOf, rulesOf); len(docs) == 0 {
					// Its Ingress or HTTPRoute serves nothing right now (no
					// backend yet): the binding waits instead of failing
					// the whole configuration.
					continue
				}
			}
			for i, d := range docs {
				data, err := document(d)
				if err != nil {
					// Cannot happen for JSON-decoded objects; reported as the
					// object's problem all the same.
					data = []byte(fmt.Sprintf("apiVersion: %s\nkind: %s\nmetadata: {name: %q, namespace: %q}\nspec: {}\n# %v\n",
						d.GetAPIVersion(), k.kind, d.GetName(), d.GetNamespace(), err))
				}
				file := name
				if i > 0 {
					file = fmt.Sprintf("%s#%d", name, i+1)
				}
				files = append(files, config.File{Name: file, Data: data, LookupEnv: lookupIn(vars[u.GetNamespace()], u.GetNamespace() == s.opts.LeaseNamespace)})
				pending[file] = ref
			}
		}
	}
	var gen []genDoc
	if len(ingEntries) > 0 {
		gen = append(gen, genDoc{name: genNamespace + "/ApiInstance/" + ingressAPI,
			doc: flexDoc("ApiInstance", genNamespace, ingressAPI, map[string]any{"address": s.opts.IngressAddress})})
	}
	if len(ingCerts) > 0 {
		gen = append(gen, genDoc{name: genNamespace + "/ApiInstance/" + ingressTLSAPI,
			doc: flexDoc("ApiInstance", genNamespace, ingressTLSAPI, map[string]any{"address": s.opts.IngressTLSAddress})},
			tlsBinding(ingressTLSAPI, ingCerts))
	}
	ports := make([]int64, 0, len(apis))
	for p := range apis {
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	for _, p := range ports {
		a := apis[p]
		scheme := "http"
		if a.protocol == "HTTPS" {
			scheme = "https"
		}
		gen = append(gen, genDoc{name: genNamespace + "/ApiInstance/" + a.name,
			doc: flexDoc("ApiInstance", genNamespace, a.name, map[string]any{"address": fmt.Sprintf("%s://%s:%d", scheme, s.opts.GatewayHost, p)})})
		if len(a.certs) > 0 {
			gen = append(gen, tlsBinding(a.name, a.certs))
		}
	}
	names := make([]string, 0, len(svcDocs))
	for n := range svcDocs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		gen = append(gen, svcDocs[n])
	}
	gen = append(gen, routeDocs(append(ingEntries, rtEntries...))...)
	for _, g := range gen {
		data, err := yaml.Marshal(g.doc)
		if err != nil {
			continue
		}
		// Generated documents carry text from Ingresses, Gateway API
		// resources and Secrets; none may read a variable.
		files = append(files, config.File{Name: g.name, Data: data, LookupEnv: noVariables})
	}
	s.mu.Lock()
	s.pending, s.refused = pending, refused
	s.routingLs, s.routingRs, s.events = ls, rtStatus, events
	s.mu.Unlock()
	return files
}

// retarget points a PolicyBinding whose targetRef is an Ingress or an
// HTTPRoute at the ApiInstances that serve it (an Ingress with TLS has
// two), limited (unless the binding has rules of its own) to the requests
// that resource routes. It returns nothing while that resource serves
// nothing; the copies after the first are named NAME.2, NAME.3.
func retarget(u *unstructured.Unstructured, apiOf map[string][]string, rulesOf map[string][]any) []*unstructured.Unstructured {
	kind, _, _ := unstructured.NestedString(u.Object, "spec", "targetRef", "kind")
	if kind != "Ingress" && kind != "HTTPRoute" {
		return []*unstructured.Unstructured{u}
	}
	name, _, _ := unstructured.NestedString(u.Object, "spec", "targetRef", "name")
	ns, _, _ := unstructured.NestedString(u.Object, "spec", "targetRef", "namespace")
	if ns == "" {
		ns = u.GetNamespace()
	}
	owner := kind + "/" + ns + "/" + name
	var out []*unstructured.Unstructured
	for i, api := range apiOf[owner] {
		c := u.DeepCopy()
		if i > 0 {
			c.SetName(fmt.Sprintf("%s.%d", u.GetName(), i+1))
		}
		_ = unstructured.SetNestedMap(c.Object, map[string]any{"kind": "ApiInstance", "name": api, "namespace": genNamespace}, "spec", "targetRef")
		if rs, ok, _ := unstructured.NestedSlice(c.Object, "spec", "rules"); !ok || len(rs) == 0 {
			_ = unstructured.SetNestedSlice(c.Object, jsonCopy(rulesOf[owner]), "spec", "rules")
		}
		out = append(out, c)
	}
	return out
}

// jsonCopy deep-copies plain values into the types unstructured accepts.
func jsonCopy(v []any) []any {
	b, _ := json.Marshal(v)
	var out []any
	_ = json.Unmarshal(b, &out)
	return out
}

// served reports whether the API server serves gvr.
func served(d discovery.DiscoveryInterface, gvr schema.GroupVersionResource) bool {
	gv := gvr.Version
	if gvr.Group != "" {
		gv = gvr.Group + "/" + gvr.Version
	}
	list, err := d.ServerResourcesForGroupVersion(gv)
	if err != nil {
		return false
	}
	for _, r := range list.APIResources {
		if r.Name == gvr.Resource {
			return true
		}
	}
	return false
}

// document renders an object as the Local Mode YAML a conf.d file holds:
// apiVersion, kind, metadata (name, namespace, labels) and spec.
func document(u *unstructured.Unstructured) ([]byte, error) {
	md := map[string]any{"name": u.GetName(), "namespace": u.GetNamespace()}
	if l := u.GetLabels(); len(l) > 0 {
		md["labels"] = l
	}
	doc := map[string]any{"apiVersion": u.GetAPIVersion(), "kind": u.GetKind(), "metadata": md}
	if spec, ok := u.Object["spec"]; ok {
		doc["spec"] = spec
	}
	return yaml.Marshal(doc)
}

// Report implements agent.Source: it works out each object's conditions
// and hands them to the status writer.
func (s *Source) Report(served *ir.Snapshot, err error) {
	byFile := map[string][]string{}
	var general []string
	if err != nil {
		var list config.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				if e.File == "" {
					general = append(general, e.Error())
					continue
				}
				// The line is in the generated document; the rest is what
				// `flexgw validate` prints for the same resource.
				loc := *e
				loc.File, loc.Line = "", 0
				byFile[e.File] = append(byFile[e.File], loc.Error())
			}
		} else {
			general = strings.Split(strings.TrimSpace(err.Error()), "\n")
		}
	}
	s.mu.Lock()
	pending := s.pending
	if err == nil {
		s.served = map[string]int64{}
		for _, ref := range pending {
			s.served[ref.key()] = ref.generation
		}
	}
	desired := make(map[string]desiredStatus, len(pending))
	var rejectedBy []string
	for file := range byFile {
		rejectedBy = append(rejectedBy, file)
	}
	sort.Strings(rejectedBy)
	for file, ref := range pending {
		d := desiredStatus{ref: ref}
		switch {
		case len(byFile[file]) > 0:
			msg := strings.Join(byFile[file], "\n")
			d.conds = []cond{{crd.ConditionAccepted, false, "Invalid", msg}, {crd.ConditionProgrammed, false, "Invalid", msg}}
		case err == nil:
			d.conds = []cond{{crd.ConditionAccepted, true, "Accepted", ""}, {crd.ConditionProgrammed, true, "Programmed", ""}}
		default:
			why := "the configuration was rejected: " + strings.Join(append(general, rejectedBy...), "; ")
			if len(rejectedBy) > 0 {
				why = "other resources are invalid: " + strings.Join(rejectedBy, ", ")
			}
			prog := cond{crd.ConditionProgrammed, false, "Pending", "not served yet: " + why + "; the last good configuration keeps serving"}
			if s.served[ref.key()] == ref.generation {
				prog = cond{crd.ConditionProgrammed, true, "Programmed", "served; " + why}
			}
			d.conds = []cond{{crd.ConditionAccepted, true, "Accepted", ""}, prog}
		}
		if prev, ok := desired[ref.key()]; ok && !prev.conds[0].ok {
			continue // one object, two documents (retarget): a failure wins
		}
		desired[ref.key()] = d
	}
	for k, d := range s.refused {
		desired[k] = d
	}
	s.mu.Unlock()
	s.mu.Lock()
	ls, rs, events := s.routingLs, s.routingRs, s.events
	s.mu.Unlock()
	s.status.setEvents(events)
	why := ""
	if err != nil {
		why = "the configuration was rejected; the last good configuration keeps serving"
	}
	for _, d := range s.routingStatus(ls, rs, err == nil, why) {
		desired[d.ref.kind+"/"+d.ref.namespace+"/"+d.ref.name] = d
	}
	if served != nil {
		s.log.Debug("status computed", "objects", len(desired), "snapshot", served.Version)
	}
	s.status.set(desired)
}
