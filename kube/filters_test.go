package kube_test

import (
	"fmt"
	"testing"

	"github.com/flexgw/flexgw/kube/kubetest"
)

// TestHTTPRouteURLRewrite sends requests through URLRewrite path filters
// (ReplacePrefixMatch, to a path and to "/", and ReplaceFullPath) and a
// RegularExpression match whose groups must not rewrite, and checks the
// path the upstream got.
func TestHTTPRouteURLRewrite(t *testing.T) {
	cl := kubetest.Start(t)
	c := kubetest.NewClient(t, cl.Kubeconfig)
	c.InstallCRDs(t, crdDir())
	installGatewayAPI(t, c)
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
