package kube_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexgw/flexgw/kube/kubetest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// BenchmarkApply1000 applies 1,000 ApiInstances at once to a real API
// server with a gateway watching, and reports how long until every one
// serves, until every status says Programmed for its generation, the
// gateway's resident memory then, and how long one changed ApiInstance
// out of the 1,000 takes to serve. One round per run (-benchtime 1x).
func BenchmarkApply1000(b *testing.B) {
	const n = 1000
	cl := kubetest.Start(b)
	c := kubetest.NewClient(b, cl.Kubeconfig)
	c.InstallCRDs(b, crdDir())
	up := upstream(b, "up")
	port := kubetest.FreePort(b)
	g := startGateway(b, cl.Kubeconfig)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	api := func(i int, upstream string) string {
		return fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata: {name: api-%04d, namespace: default}
spec:
  address: http://127.0.0.1:%d/api-%04d
  services:
    s: {address: %s}
`, i, port, i, upstream)
	}
	gvr := schema.GroupVersionResource{Group: "gateway.mulesoft.com", Version: "v1alpha1", Resource: "apiinstances"}
	for r := 0; r < b.N; r++ {
		start := time.Now()
		var wg sync.WaitGroup
		work := make(chan int)
		errs := make(chan error, n)
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					if err := c.Apply(b, api(i, up)); err != nil {
						errs <- err
					}
				}
			}()
		}
		for i := 0; i < n; i++ {
			work <- i
		}
		close(work)
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		applied := time.Since(start)
		kubetest.Eventually(b, 10*time.Minute, "all served", func() (bool, string) {
			for _, i := range []int{0, n / 2, n - 1} {
				if got := get(fmt.Sprintf("%s/api-%04d/x", base, i)); got != "200 up /x" {
					return false, got
				}
			}
			return true, ""
		})
		served := time.Since(start)
		for i := 0; i < n; i++ {
			if got := get(fmt.Sprintf("%s/api-%04d/x", base, i)); got != "200 up /x" {
				b.Fatalf("api-%04d: %s", i, got)
			}
		}
		kubetest.Eventually(b, 10*time.Minute, "all statuses written", func() (bool, string) {
			list, err := c.Dynamic.Resource(gvr).Namespace("default").List(context.Background(), metav1.ListOptions{})
			if err != nil {
				return false, err.Error()
			}
			done := 0
			for _, o := range list.Items {
				og, _, _ := unstructured.NestedInt64(o.Object, "status", "observedGeneration")
				conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
				for _, cd := range conds {
					m := cd.(map[string]any)
					if m["type"] == "Programmed" && m["status"] == "True" && og == o.GetGeneration() {
						done++
					}
				}
			}
			return done == n, fmt.Sprintf("%d of %d", done, n)
		})
		statuses := time.Since(start)
		rss := rssKB(b, g.Cmd.Process.Pid)

		up2 := upstream(b, "changed")
		start = time.Now()
		c.MustApply(b, api(n/2, up2))
		waitServed(b, fmt.Sprintf("%s/api-%04d/x", base, n/2), "200 changed /x")
		one := time.Since(start)

		b.ReportMetric(float64(applied.Milliseconds()), "apply-ms")
		b.ReportMetric(float64(served.Milliseconds()), "all-served-ms")
		b.ReportMetric(float64(statuses.Milliseconds()), "all-status-ms")
		b.ReportMetric(float64(rss)/1024, "agent-rss-MB")
		b.ReportMetric(float64(one.Milliseconds()), "one-change-ms")
		b.ReportMetric(float64(cl.Started.Milliseconds()), "apiserver-start-ms")
	}
}

func rssKB(t testing.TB, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}
