package kube_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flexgw/flexgw/kube/kubetest"
)

// TestHTTPRouteRedirectsMatchesAndInvalidBackends sends real requests
// through an HTTPRoute's RequestRedirect filters (scheme, hostname, port
// derived as the spec says, path ReplaceFullPath and ReplacePrefixMatch,
// status codes), query parameter and method matches, a URLRewrite
// hostname, and rules whose backends are invalid (unknown Service,
// unsupported kind, cross-namespace without a ReferenceGrant), which must
// answer 500 while the route stays Accepted with ResolvedRefs=False, a
// RequestMirror filter, and listeners whose allowedRoutes.kinds name a
// kind flexgw does not serve.
func TestHTTPRouteRedirectsMatchesAndInvalidBackends(t *testing.T) {
	t.Parallel() // own API server, gateway and ports: independent of the others
	cl, c := gatewayAPICluster(t)
	echo := serveOn(t, kubetest.HostIP(t), "echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "echo %s %s", r.Host, r.URL.RequestURI())
	}))
	c.MustApply(t, backendServiceFor(t, "default", "echo", echo))
	copies := make(chan string, 16)
	mirror := serveOn(t, kubetest.HostIP(t), "mirror", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		copies <- r.Method + " " + r.URL.RequestURI()
	}))
	c.MustApply(t, backendServiceFor(t, "default", "mirror", mirror))
	c.MustApply(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n---\n"+backendService(t, "other", "far"))
	port, only, mixed := kubetest.FreePort(t), kubetest.FreePort(t), kubetest.FreePort(t)
	// Listeners whose allowedRoutes.kinds name a kind flexgw does not
	// serve: alone (no route attaches) and beside HTTPRoute.
	c.MustApply(t, gatewayYAML(fmt.Sprintf(` [{name: http, port: %d, protocol: HTTP},
    {name: only, port: %d, protocol: HTTP, allowedRoutes: {kinds: [{kind: InvalidRoute}]}},
    {name: mixed, port: %d, protocol: HTTP, allowedRoutes: {kinds: [{kind: InvalidRoute}, {kind: HTTPRoute}]}}]`, port, only, mixed))+`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: redirects, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /to-https}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, hostname: example.org}}]
  - matches: [{path: {type: PathPrefix, value: /to-8443}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, hostname: example.org, port: 8443, statusCode: 301}}]
  - matches: [{path: {type: PathPrefix, value: /same-host}}]
    filters: [{type: RequestRedirect, requestRedirect: {statusCode: 308}}]
  - matches: [{path: {type: PathPrefix, value: /full}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org, path: {type: ReplaceFullPath, replaceFullPath: /replaced}}}]
  - matches: [{path: {type: PathPrefix, value: /prefix/old}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org, statusCode: 307, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: matches, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /q}, queryParams: [{name: animal, value: whale}]}]
    backendRefs: [{name: echo, port: 80}]
    filters: [{type: URLRewrite, urlRewrite: {hostname: whales.internal}}]
  - matches: [{path: {type: PathPrefix, value: /q}, queryParams: [{type: RegularExpression, name: num, value: "[0-9]+"}]}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: numbers.example}}]
  - matches: [{path: {type: PathPrefix, value: /m}, method: POST}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: posted.example}}]
  - matches: [{path: {type: PathPrefix, value: /h}, headers: [{type: RegularExpression, name: X-Version, value: "v[2-9]"}]}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: v2.example}}]
  - matches: [{path: {type: PathPrefix, value: /mirrored}}]
    filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: mirror, port: 80}}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: mirror, port: 80}, percent: 0}}
    backendRefs: [{name: echo, port: 80}]
  - backendRefs: [{name: echo, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: invalid, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /missing}}]
    backendRefs: [{name: nothing-here, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /kind}}]
    backendRefs: [{group: example.com, kind: Bucket, name: b}]
  - matches: [{path: {type: PathPrefix, value: /cross}}]
    backendRefs: [{name: far, namespace: other, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /partial}}]
    backendRefs: [{name: echo, port: 80}, {name: nothing-here, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: backend-filters, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /bf}}]
    backendRefs:
    - name: echo
      port: 80
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-A, value: b}]}}]
`)
	startGateway(t, cl.Kubeconfig)
	at := fmt.Sprintf("http://127.0.0.1:%d", port)
	c0 := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, hdr ...string) string {
		req, _ := http.NewRequest(method, at+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c0.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b := make([]byte, 256)
		n, _ := resp.Body.Read(b)
		if loc := resp.Header.Get("Location"); loc != "" {
			return fmt.Sprintf("%d %s", resp.StatusCode, loc)
		}
		return strings.TrimSpace(fmt.Sprintf("%d %s", resp.StatusCode, b[:n]))
	}
	kubetest.Eventually(t, time.Minute, "redirect served", func() (bool, string) {
		got := do("GET", "/to-https/a?x=1")
		return got == "302 https://example.org/to-https/a?x=1", got
	})
	self := fmt.Sprintf("127.0.0.1:%d", port)
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/to-8443", "301 https://example.org:8443/to-8443"},
		// No scheme, no hostname: the request's host and the listener's port.
		{"GET", "/same-host/x", "308 http://" + self + "/same-host/x"},
		{"GET", "/full/a/b?q=1", "302 http://example.org:" + fmt.Sprint(port) + "/replaced?q=1"},
		{"GET", "/prefix/old/a/b", "307 http://example.org:" + fmt.Sprint(port) + "/new/a/b"},
		{"GET", "/prefix/old", "307 http://example.org:" + fmt.Sprint(port) + "/new"},
		{"GET", "/q?animal=whale", "200 echo whales.internal /q?animal=whale"},
		{"GET", "/q?animal=dolphin&num=42", "302 http://numbers.example:" + fmt.Sprint(port) + "/q?animal=dolphin&num=42"},
		// Without a hostname rewrite the upstream gets the client's Host.
		{"GET", "/q?animal=dolphin", "200 echo " + self + " /q?animal=dolphin"},
		{"POST", "/m", "302 http://posted.example:" + fmt.Sprint(port) + "/m"},
		{"GET", "/m", "200 echo " + self + " /m"},
		{"GET", "/h", "200 echo " + self + " /h"},
		{"GET", "/missing/x", "500"},
		{"GET", "/kind", "500"},
		{"GET", "/cross", "500"},
	} {
		var hdr []string
		if tc.path == "/h" && tc.want[:3] == "302" {
			hdr = []string{"X-Version", "v3"}
		}
		if got := do(tc.method, tc.path, hdr...); got != tc.want {
			t.Errorf("%s %s: got %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
	// RequestMirror: the client gets the backend's answer, the mirror a copy.
	if got := do("GET", "/mirrored/x?y=1"); got != "200 echo "+self+" /mirrored/x?y=1" {
		t.Errorf("GET /mirrored/x: %q", got)
	}
	select {
	case got := <-copies:
		if got != "GET /mirrored/x?y=1" {
			t.Errorf("the mirror got %q", got)
		}
	case <-time.After(30 * time.Second):
		t.Error("the mirror never got its copy")
	}
	if got := do("GET", "/h", "X-Version", "v3"); got != "302 http://v2.example:"+fmt.Sprint(port)+"/h" {
		t.Errorf("GET /h with X-Version v3: %q", got)
	}
	for _, l := range []struct {
		name  string
		kinds int
		att   int64
	}{{"only", 0, 0}, {"mixed", 1, 4}, {"http", 1, 4}} {
		want := "False InvalidRouteKinds"
		if l.name == "http" {
			want = "True ResolvedRefs"
		}
		kubetest.Eventually(t, time.Minute, "listener "+l.name, func() (bool, string) {
			s, r, _ := listenerCond(t, c, "default", "gw", l.name, "ResolvedRefs")
			k, a := listenerKinds(t, c, l.name)
			got := fmt.Sprintf("%s %s kinds=%d attached=%d", s, r, k, a)
			return got == fmt.Sprintf("%s kinds=%d attached=%d", want, l.kinds, l.att), got
		})
	}
	if got := get(fmt.Sprintf("http://127.0.0.1:%d/m", only)); got[:3] != "404" {
		t.Errorf("a listener admitting no HTTPRoute served one: %s", got)
	}
	if got := get(fmt.Sprintf("http://127.0.0.1:%d/m", mixed)); got[:3] != "200" {
		t.Errorf("a listener admitting HTTPRoute beside an invalid kind: %s", got)
	}
	// Half of /partial's requests are weighted to a Service that does not
	// exist: those get 500, the others the backend's answer.
	seen := map[string]bool{}
	for i := 0; i < 400 && len(seen) < 2; i++ {
		got := do("GET", "/partial")
		if got != "500" && got != "200 echo "+self+" /partial" {
			t.Fatalf("GET /partial: %q", got)
		}
		seen[got] = true
	}
	if len(seen) != 2 {
		t.Errorf("GET /partial: only %v in 400 requests", seen)
	}
	waitRouteCond(t, c, "default", "backend-filters", "", "Accepted", "False UnsupportedValue")
	if got := do("GET", "/bf"); got != "200 echo "+self+" /bf" { // the catch-all of route matches
		t.Errorf("GET /bf: a rule with backendRef filters was served: %q", got)
	}
	waitRouteCond(t, c, "default", "invalid", "", "Accepted", "True Accepted")
	waitRouteCond(t, c, "default", "invalid", "", "ResolvedRefs", "False BackendNotFound")
	waitRouteCond(t, c, "default", "redirects", "", "ResolvedRefs", "True ResolvedRefs")
}

// listenerKinds returns how many supportedKinds and attached routes a
// listener of default/gw reports.
func listenerKinds(t *testing.T, c *kubetest.Client, listener string) (int, int64) {
	t.Helper()
	o, err := c.Get(t, kubetest.Decode(t, "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\n")[0])
	if err != nil {
		return -1, -1
	}
	ls, _, _ := unstructured.NestedSlice(o.Object, "status", "listeners")
	for _, l := range ls {
		m := l.(map[string]any)
		if m["name"] == listener {
			ks, _ := m["supportedKinds"].([]any)
			a, _ := m["attachedRoutes"].(int64)
			return len(ks), a
		}
	}
	return -1, -1
}
