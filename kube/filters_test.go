package kube_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/kube/kubetest"
)

// TestHTTPRouteURLRewrite sends requests through URLRewrite path filters
// (ReplacePrefixMatch, to a path and to "/", and ReplaceFullPath) and a
// RegularExpression match whose groups must not rewrite, and checks the
// path the upstream got.
func TestHTTPRouteURLRewrite(t *testing.T) {
	t.Parallel() // own API server, gateway and ports: independent of the others
	cl, c := gatewayAPICluster(t)
	c.MustApply(t, backendService(t, "default", "web"))
	c.MustApply(t, backendService(t, "default", "api"))
	port := kubetest.FreePort(t)
	c.MustApply(t, gatewayYAML(fmt.Sprintf(" [{name: http, port: %d, protocol: HTTP}]", port))+`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: rewrite, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /prefix/one}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /one}}}]
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /strip}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}]
    backendRefs: [{name: web, port: 80, weight: 1}, {name: api, port: 80, weight: 0}]
  - matches: [{path: {type: PathPrefix, value: /full}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /replaced/path}}}]
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: RegularExpression, value: "/re/(a|b)/.*"}}]
    backendRefs: [{name: api, port: 80}]
`)
	startGateway(t, cl.Kubeconfig)
	at := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitServed(t, at+"/prefix/one/two", "200 web /one/two")
	for path, want := range map[string]string{
		"/prefix/one":      "200 web /one",
		"/prefix/one/":     "200 web /one/",
		"/strip/three":     "200 web /three",
		"/strip":           "200 web /",
		"/full":            "200 web /replaced/path",
		"/full/x/y?q=1":    "200 web /replaced/path",
		"/re/a/x":          "200 api /re/a/x",
		"/re/b/deeper/bit": "200 api /re/b/deeper/bit",
	} {
		if got := get(at + path); got != want {
			t.Errorf("GET %s: got %q, want %q", path, got, want)
		}
	}
	if got := get(at + "/prefix/onex"); got[:3] != "404" {
		t.Errorf("GET /prefix/onex (not under the prefix): %s", got)
	}
}

// TestHTTPRouteHeaderModifiers sends requests through RequestHeaderModifier
// and ResponseHeaderModifier filters (set replaces the client's value,
// add keeps it, remove drops it) to an upstream that reports the headers
// it got, checks the response headers the client gets, a rule's
// timeouts.request against an upstream that never answers, and that a filter
// naming a header the proxy owns is refused in the route's status.
func TestHTTPRouteHeaderModifiers(t *testing.T) {
	t.Parallel() // own API server, gateway and ports: independent of the others
	cl, c := gatewayAPICluster(t)
	echo := serveOn(t, kubetest.HostIP(t), "echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/slow") {
			<-r.Context().Done() // answers only a gateway that gave up
			return
		}
		w.Header().Set("X-Up", "1")
		w.Header().Set("Cache-Control", "public")
		w.Header().Add("X-Multi", "up")
		fmt.Fprintf(w, "env=%s tag=%s debug=%s", strings.Join(r.Header.Values("X-Env"), ","),
			strings.Join(r.Header.Values("X-Tag"), ","), strings.Join(r.Header.Values("X-Debug"), ","))
	}))
	c.MustApply(t, backendServiceFor(t, "default", "echo", echo))
	port := kubetest.FreePort(t)
	c.MustApply(t, gatewayYAML(fmt.Sprintf(" [{name: http, port: %d, protocol: HTTP}]", port))+`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: headers, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /mod}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Env, value: prod}]
        add: [{name: X-Tag, value: gw}]
        remove: [X-Debug]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: Cache-Control, value: no-store}]
        add: [{name: X-Multi, value: gw}]
        remove: [X-Up]
    backendRefs: [{name: echo, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /plain}}]
    backendRefs: [{name: echo, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /slow}}]
    timeouts: {request: 1s}
    backendRefs: [{name: echo, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: owned, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /owned}}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: Content-Length, value: "0"}]}}]
    backendRefs: [{name: echo, port: 80}]
`)
	startGateway(t, cl.Kubeconfig)
	at := fmt.Sprintf("http://127.0.0.1:%d", port)
	do := func(path string) (string, http.Header) {
		req, _ := http.NewRequest("GET", at+path, nil)
		req.Header.Set("X-Env", "dev")
		req.Header.Set("X-Tag", "client")
		req.Header.Set("X-Debug", "1")
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			return err.Error(), nil
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		_, _ = fmt.Fprint(b, resp.StatusCode, " ")
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return b.String(), resp.Header
	}
	kubetest.Eventually(t, time.Minute, "request headers modified", func() (bool, string) {
		got, _ := do("/mod/x")
		return got == "200 env=prod tag=client,gw debug=", got
	})
	_, h := do("/mod/x")
	if h.Get("Cache-Control") != "no-store" || h.Get("X-Up") != "" || strings.Join(h.Values("X-Multi"), ",") != "up,gw" {
		t.Fatalf("response headers not modified: %v", h)
	}
	// A rule without filters is untouched.
	if got, h := do("/plain/x"); got != "200 env=dev tag=client debug=1" || h.Get("X-Up") != "1" || h.Get("Cache-Control") != "public" {
		t.Fatalf("a rule without filters: %s %v", got, h)
	}
	// timeouts.request bounds the upstream exchange (the default is 15s,
	// beyond the client's 5s).
	if got, _ := do("/slow"); !strings.HasPrefix(got, "504") {
		t.Fatalf("timeouts.request: %s", got)
	}
	waitRouteCond(t, c, "default", "owned", "", "Accepted", "False UnsupportedValue")
	if got, _ := do("/owned"); strings.HasPrefix(got, "200") {
		t.Fatalf("a rule setting Content-Length was served: %s", got)
	}
}
