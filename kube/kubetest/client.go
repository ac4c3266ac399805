package kubetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

// Client is a dynamic client with a discovery-backed kind → resource
// mapping, enough to apply manifests the way kubectl does.
type Client struct {
	Dynamic dynamic.Interface
	mapper  *restmapper.DeferredDiscoveryRESTMapper
}

// NewClient connects to the cluster with kubeconfig.
func NewClient(t testing.TB, kubeconfig string) *Client {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &Client{Dynamic: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))}
}

// Decode splits a multi-document YAML manifest into objects.
func Decode(t testing.TB, manifest string) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(manifest)), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("decode manifest: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// Resource returns the namespaced (or cluster) resource interface of obj.
func (c *Client) Resource(t testing.TB, obj *unstructured.Unstructured) dynamic.ResourceInterface {
	t.Helper()
	gvk := obj.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		c.mapper.Reset() // a CRD installed since the last discovery
		if m, err = c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			t.Fatalf("no resource for %v: %v", gvk, err)
		}
	}
	if m.Scope.Name() == "namespace" {
		ns := obj.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		return c.Dynamic.Resource(m.Resource).Namespace(ns)
	}
	return c.Dynamic.Resource(m.Resource)
}

// Apply server-side applies every object of manifest and returns the
// first error (the API server's rejection) instead of failing the test.
func (c *Client) Apply(t testing.TB, manifest string) error {
	t.Helper()
	for _, obj := range Decode(t, manifest) {
		_, err := c.Resource(t, obj).Apply(context.Background(), obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "flexgw-test", Force: true})
		if err != nil {
			return err
		}
	}
	return nil
}

// MustApply is Apply failing the test on error.
func (c *Client) MustApply(t testing.TB, manifest string) {
	t.Helper()
	if err := c.Apply(t, manifest); err != nil {
		t.Fatalf("apply: %v\n%s", err, manifest)
	}
}

// Get reads obj back (kind, namespace and name are taken from it).
func (c *Client) Get(t testing.TB, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	t.Helper()
	return c.Resource(t, obj).Get(context.Background(), obj.GetName(), metav1.GetOptions{})
}

// InstallCRDs applies every *.yaml of dir and waits until each CRD is
// Established.
func (c *Client) InstallCRDs(t testing.TB, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in %s: %v", dir, err)
	}
	sort.Strings(files)
	var crds []*unstructured.Unstructured
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c.MustApply(t, string(b))
		crds = append(crds, Decode(t, string(b))...)
	}
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, crd := range crds {
		Eventually(t, time.Minute, "CRD "+crd.GetName()+" established", func() (bool, string) {
			got, err := c.Dynamic.Resource(gvr).Get(context.Background(), crd.GetName(), metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
			for _, cd := range conds {
				m, _ := cd.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, ""
				}
			}
			return false, "conditions " + toJSON(conds)
		})
	}
	c.mapper.Reset()
}

// Eventually polls cond until it holds, failing with its last message
// after timeout. Tests wait on conditions, never fixed sleeps.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	delay := 20 * time.Millisecond
	var last string
	for {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, timeout, last)
		}
		time.Sleep(delay)
		if delay < 500*time.Millisecond {
			delay *= 2
		}
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
