//go:build apiserver

package kube_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/kube/kubetest"
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
