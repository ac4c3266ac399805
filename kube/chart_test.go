package kube_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/kube/kubetest"
	"go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

const chartDir = "../charts/flexgw"

func helm(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	cmd := exec.Command(kubetest.Tool(t, "helm"), args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	if kubeconfig != "" {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+kubeconfig)
	}
	// Stdout only: helm warns about the dashboards symlink on stderr.
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// TestChartInstallUpgradeUninstall installs the chart into a real API
// server, then runs the gateway outside the cluster with the token of the
// chart's ServiceAccount, so the chart's RBAC is exactly what it serves
// and writes status with; then upgrades and uninstalls.
func TestChartInstallUpgradeUninstall(t *testing.T) {
	cl := kubetest.Start(t)
	c := kubetest.NewClient(t, cl.Kubeconfig)
	helm(t, cl.Kubeconfig, "install", "gw", chartDir, "--namespace", "edge", "--create-namespace")

	dep := kubetest.Decode(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: gw-flexgw, namespace: edge}\n")[0]
	got, err := c.Get(t, dep)
	if err != nil {
		t.Fatalf("Deployment after install: %v", err)
	}
	if r, _, _ := unstructured.NestedInt64(got.Object, "spec", "replicas"); r != 2 {
		t.Fatalf("replicas %d", r)
	}

	// A token for the chart's ServiceAccount (TokenRequest, as the
	// kubelet would mount it).
	sa := schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
	tr := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
		"metadata": map[string]any{"name": "gw-flexgw"}, "spec": map[string]any{"expirationSeconds": int64(3600)}}}
	res, err := c.Dynamic.Resource(sa).Namespace("edge").Create(context.Background(), tr, metav1.CreateOptions{}, "token")
	if err != nil {
		t.Fatalf("token for the chart's ServiceAccount: %v", err)
	}
	token, _, _ := unstructured.NestedString(res.Object, "status", "token")
	kc := cl.KubeconfigFor(t, "gw-flexgw", token)

	up := upstream(t, "chart")
	port := kubetest.FreePort(t)
	api := fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata: {name: hello, namespace: default}
spec:
  address: http://127.0.0.1:%d
  services:
    up: {address: %s}
`, port, up)
	c.MustApply(t, api) // the CRDs came with the chart
	t.Setenv("POD_NAMESPACE", "edge")
	startGateway(t, kc, "--ingress-address", fmt.Sprintf("http://127.0.0.1:%d", kubetest.FreePort(t)))
	waitServed(t, fmt.Sprintf("http://127.0.0.1:%d/x", port), "200 chart /x")
	waitCondition(t, c, api, "Programmed", "True")

	helm(t, cl.Kubeconfig, "upgrade", "gw", chartDir, "--namespace", "edge", "--set", "replicaCount=3")
	got, err = c.Get(t, dep)
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := unstructured.NestedInt64(got.Object, "spec", "replicas"); r != 3 {
		t.Fatalf("replicas after upgrade %d", r)
	}
	helm(t, cl.Kubeconfig, "uninstall", "gw", "--namespace", "edge")
	if _, err := c.Get(t, dep); err == nil {
		t.Fatal("Deployment still there after uninstall")
	}
}

// rendered splits `helm template` output into objects by "Kind/name".
func rendered(t *testing.T, out string) map[string]map[string]any {
	t.Helper()
	objs := map[string]map[string]any{}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(out)))
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatalf("helm output: %v", err)
		}
		if m == nil {
			continue
		}
		md, _ := m["metadata"].(map[string]any)
		name, _ := md["name"].(string)
		kind, _ := m["kind"].(string)
		objs[kind+"/"+name] = m
	}
}

var allOn = []string{
	"--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.podMonitor.enabled=true",
	"--set", "metrics.prometheusRule.enabled=true", "--set", "dashboards.enabled=true",
	"--set", "autoscaling.enabled=true", "--set", "redis.address=redis:6379",
	"--set", "redis.passwordSecret.name=redis",
}

// TestChartLintAndTemplate lints the chart and checks what it renders:
// probes, least capabilities (eBPF's only when asked), PDB, HPA,
// anti-affinity, monitors, the alert rules and dashboards of dashboards/.
func TestChartLintAndTemplate(t *testing.T) {
	helm(t, "", "lint", "--strict", chartDir)
	helm(t, "", append([]string{"lint", "--strict", chartDir}, allOn...)...)

	objs := rendered(t, helm(t, "", append([]string{"template", "gw", chartDir, "--namespace", "edge"}, allOn...)...))
	dep := objs["Deployment/gw-flexgw"]
	if dep == nil {
		t.Fatalf("no Deployment; got %v", keys(objs))
	}
	c := nested(t, dep, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
	if p := nested(t, c, "readinessProbe", "httpGet", "path"); p != "/ready" {
		t.Errorf("readiness probe path %v", p)
	}
	if p := nested(t, c, "livenessProbe", "httpGet", "path"); p != "/live" {
		t.Errorf("liveness probe path %v", p)
	}
	caps := nested(t, c, "securityContext", "capabilities").(map[string]any)
	if !reflect.DeepEqual(caps["drop"], []any{"ALL"}) || caps["add"] != nil {
		t.Errorf("capabilities %v, want drop ALL and nothing added", caps)
	}
	if nested(t, c, "securityContext", "readOnlyRootFilesystem") != true || nested(t, c, "securityContext", "allowPrivilegeEscalation") != false {
		t.Errorf("container securityContext %v", c["securityContext"])
	}
	if nested(t, dep, "spec", "template", "spec", "affinity", "podAntiAffinity") == nil {
		t.Error("no pod anti-affinity")
	}
	for _, want := range []string{"PodDisruptionBudget/gw-flexgw", "HorizontalPodAutoscaler/gw-flexgw", "ServiceMonitor/gw-flexgw",
		"PodMonitor/gw-flexgw", "PrometheusRule/gw-flexgw", "Service/gw-flexgw-http", "Service/gw-flexgw-admin", "IngressClass/flexgw",
		"Configuration/gw-flexgw", "ClusterRole/gw-flexgw", "Role/gw-flexgw-lease"} {
		if objs[want] == nil {
			t.Errorf("%s not rendered", want)
		}
	}
	// The PrometheusRule carries dashboards/alerts.yaml's groups unchanged.
	var alerts map[string]any
	b, err := os.ReadFile("../dashboards/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &alerts); err != nil {
		t.Fatal(err)
	}
	if got := nested(t, objs["PrometheusRule/gw-flexgw"], "spec", "groups"); !reflect.DeepEqual(normalize(t, got), normalize(t, alerts["groups"])) {
		t.Error("PrometheusRule groups differ from dashboards/alerts.yaml")
	}
	dashboards, _ := filepath.Glob("../dashboards/*.json")
	n := 0
	for k, o := range objs {
		if strings.HasPrefix(k, "ConfigMap/gw-flexgw-dashboard-") {
			n++
			if nested(t, o, "metadata", "labels", "grafana_dashboard") != "1" {
				t.Errorf("%s lacks the sidecar label", k)
			}
		}
	}
	if n != len(dashboards) || n == 0 {
		t.Errorf("%d dashboard ConfigMaps for %d dashboards", n, len(dashboards))
	}
	// The Redis password reaches the Configuration as an environment reference.
	if got := nested(t, objs["Configuration/gw-flexgw"], "spec", "sharedStorage", "redis", "password"); got != "$FLEXGW_REDIS_PASSWORD" {
		t.Errorf("redis password %v", got)
	}

	// The pod binds the admin API beyond loopback, which flexgw refuses
	// without a token: the chart always hands it one, its own Secret unless
	// admin.tokenSecret names another, and the monitors send the same one.
	for _, tc := range []struct {
		args             []string
		secret, generate string
	}{
		{nil, "gw-flexgw-admin-token", "Secret/gw-flexgw-admin-token"},
		{[]string{"--set", "admin.tokenSecret=mine"}, "mine", ""},
	} {
		objs = rendered(t, helm(t, "", append(append([]string{"template", "gw", chartDir}, allOn...), tc.args...)...))
		if tc.generate != "" && nested(t, objs[tc.generate], "data", "token") == nil {
			t.Errorf("%v: no generated admin token Secret; got %v", tc.args, keys(objs))
		}
		if tc.generate == "" && objs["Secret/gw-flexgw-admin-token"] != nil {
			t.Errorf("%v: a token Secret is generated although admin.tokenSecret is set", tc.args)
		}
		c = nested(t, objs["Deployment/gw-flexgw"], "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
		var ref any
		for _, e := range c["env"].([]any) {
			if e.(map[string]any)["name"] == "FLEXGW_ADMIN_TOKEN" {
				ref = nested(t, e.(map[string]any), "valueFrom", "secretKeyRef", "name")
			}
		}
		if ref != tc.secret {
			t.Errorf("%v: FLEXGW_ADMIN_TOKEN from Secret %v, want %s", tc.args, ref, tc.secret)
		}
		for _, m := range []string{"ServiceMonitor/gw-flexgw", "PodMonitor/gw-flexgw"} {
			ep := nested(t, objs[m], "spec", "podMetricsEndpoints")
			if ep == nil {
				ep = nested(t, objs[m], "spec", "endpoints")
			}
			if got := nested(t, ep.([]any)[0].(map[string]any), "authorization", "credentials", "name"); got != tc.secret {
				t.Errorf("%v: %s sends the token of Secret %v, want %s", tc.args, m, got, tc.secret)
			}
		}
	}

	// eBPF opt-in adds exactly the probe's capabilities.
	objs = rendered(t, helm(t, "", "template", "gw", chartDir, "--set", "ebpf.enabled=true"))
	c = nested(t, objs["Deployment/gw-flexgw"], "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
	if add := nested(t, c, "securityContext", "capabilities", "add"); !reflect.DeepEqual(add, []any{"BPF", "PERFMON", "NET_ADMIN"}) {
		t.Errorf("eBPF capabilities %v", add)
	}
	// One namespace watched: a Role there, no ClusterRole for the resources.
	objs = rendered(t, helm(t, "", "template", "gw", chartDir, "--set", "watch.namespace=team-a"))
	if objs["Role/gw-flexgw"] == nil || objs["ClusterRole/gw-flexgw"] != nil {
		t.Errorf("watch.namespace: got %v", keys(objs))
	}
}

func nested(t *testing.T, o map[string]any, path ...string) any {
	t.Helper()
	var cur any = o
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// normalize round-trips a value through YAML so int widths and map types
// compare equal.
func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := yaml.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
