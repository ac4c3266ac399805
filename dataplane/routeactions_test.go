package dataplane

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/ir"
)

// TestRoutesThatAnswerAndQueryMatches: a redirect route answers with its
// Location and never reaches an upstream, a direct-response route answers
// its status, a rule's query matches choose the route, and hostRewrite
// sets the upstream's Host header.
func TestRoutesThatAnswerAndQueryMatches(t *testing.T) {
	hits := make(chan string, 16)
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		hits <- r.RequestURI
		w.Header().Set("X-Host", r.Host)
		w.Write([]byte("up:" + r.RequestURI))
	})
	secure := &ir.Route{Name: "secure", Rules: []ir.Rule{{Path: ir.MustRegexp("/secure(?:/.*)?")}},
		Redirect: &ir.Redirect{Scheme: "https", Port: 8443, StatusCode: 301}}
	moved := &ir.Route{Name: "moved", Rules: []ir.Rule{{Path: ir.MustRegexp("/old(/.*)?")}},
		Redirect: &ir.Redirect{Host: "new.example.com", RewritePath: true, Path: "/new", StatusCode: 307}}
	broken := &ir.Route{Name: "broken", Rules: []ir.Rule{{Path: ir.MustRegexp("/broken")}},
		DirectResponse: &ir.DirectResponse{Status: 500}}
	teapot := &ir.Route{Name: "teapot", Rules: []ir.Rule{{Path: ir.MustRegexp("/tea")}},
		DirectResponse: &ir.DirectResponse{Status: 418, Body: "short and stout"}}
	search := catchAll("search", "up")
	search.Rules = []ir.Rule{{Path: ir.MustRegexp("/search"), Query: []ir.QueryMatch{{Name: "q", Value: ir.MustRegexp(".+")}, {Name: "page", Value: ir.MustRegexp("[0-9]+")}}}}
	search.HostRewrite = "search.internal"
	s := snapshot(1, []*ir.Service{svc("up", endpointOf(t, up))}, api("api", "/", secure, moved, broken, teapot, search, catchAll("rest", "up")))
	g := startGateway(t, s)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	for _, tc := range []struct {
		path, status, location, body string
	}{
		{"/secure/a?x=1", "301", "https://" + strings.Split(g.addr, ":")[0] + ":8443/secure/a?x=1", ""},
		{"/old/a/b?x=1", "307", "http://new.example.com/new/a/b?x=1", ""},
		{"/old", "307", "http://new.example.com/new", ""},
		{"/broken", "500", "", ""},
		{"/tea", "418", "", "short and stout"},
	} {
		resp, body := get(t, c, g.url(tc.path))
		if got := resp.Status[:3]; got != tc.status || resp.Header.Get("Location") != tc.location || body != tc.body {
			t.Errorf("GET %s: %s Location %q body %q; want %s %q %q", tc.path, got, resp.Header.Get("Location"), body, tc.status, tc.location, tc.body)
		}
	}
	select {
	case uri := <-hits:
		t.Fatalf("a route that answers by itself reached the upstream with %s", uri)
	default:
	}

	for _, tc := range []struct{ path, host string }{
		{"/search?q=shoes&page=2", "search.internal"},
		{"/search?page=2&q=a%20b", "search.internal"},
		{"/search?q=shoes&page=x", ""}, // page not a number: the catch-all
		{"/search?page=1", ""},         // no q
	} {
		resp, body := get(t, c, g.url(tc.path))
		want := tc.host
		if want == "" {
			want = endpointOf(t, up).Address()
		}
		if resp.StatusCode != 200 || resp.Header.Get("X-Host") != want || body != "up:"+tc.path {
			t.Errorf("GET %s: %d Host %q body %q; want 200 Host %q", tc.path, resp.StatusCode, resp.Header.Get("X-Host"), body, want)
		}
		<-hits
	}
}

// TestRequestMirror: a mirrored route's upstream answers the client while
// the mirror service gets a copy of each request (method, rewritten path,
// headers, body); a mirror that is down or slow changes nothing for the
// client.
func TestRequestMirror(t *testing.T) {
	type copyOf struct{ method, uri, tag, body string }
	copies := make(chan copyOf, 8)
	mirror := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		copies <- copyOf{r.Method, r.RequestURI, r.Header.Get("X-Tag"), string(b)}
		w.WriteHeader(http.StatusTeapot) // never seen by the client
	})
	main := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write([]byte("main " + r.RequestURI + " " + string(b)))
	})
	rt := catchAll("mirrored", "main")
	rt.Rules = []ir.Rule{{Path: ir.MustRegexp("/api(/.*)")}}
	rt.Mirrors = []ir.Mirror{{Service: "default/mirror", PerMillion: ir.MirrorAll}, {Service: "default/down", PerMillion: ir.MirrorAll},
		{Service: "default/mirror", PerMillion: 0}} // never: one copy per request
	s := snapshot(1, []*ir.Service{svc("main", endpointOf(t, main)), svc("mirror", endpointOf(t, mirror)), svc("down", freeAddr(t))},
		api("api", "/", rt))
	g := startGateway(t, s)
	req, _ := http.NewRequest("POST", g.url("/api/orders?x=1"), strings.NewReader("payload"))
	req.Header.Set("X-Tag", "t1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "main /orders?x=1 payload" {
		t.Fatalf("client got %d %q", resp.StatusCode, b)
	}
	next := func() copyOf {
		select {
		case c := <-copies:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("the mirror never got its copy")
		}
		return copyOf{}
	}
	if c := next(); c != (copyOf{"POST", "/orders?x=1", "t1", "payload"}) {
		t.Fatalf("mirror got %+v", c)
	}
	resp, body := get(t, http.DefaultClient, g.url("/api/items"))
	if resp.StatusCode != 200 || body != "main /items " {
		t.Fatalf("GET: %d %q", resp.StatusCode, body)
	}
	if c := next(); c != (copyOf{"GET", "/items", "", ""}) {
		t.Fatalf("mirror got %+v", c)
	}
}

// TestPreserveHost: a route with PreserveHost sends the client's Host
// header upstream, one without sends the endpoint's, and hostRewrite wins
// over both.
func TestPreserveHost(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(r.Host)) })
	keep := catchAll("keep", "up")
	keep.Rules, keep.PreserveHost = []ir.Rule{{Path: ir.MustRegexp("/keep")}}, true
	both := catchAll("both", "up")
	both.Rules, both.PreserveHost, both.HostRewrite = []ir.Rule{{Path: ir.MustRegexp("/both")}}, true, "rewritten.internal"
	g := startGateway(t, snapshot(1, []*ir.Service{svc("up", endpointOf(t, up))}, api("api", "/", keep, both, catchAll("rest", "up"))))
	for path, want := range map[string]string{"/keep": "shop.example.com:8080", "/both": "rewritten.internal", "/other": endpointOf(t, up).Address()} {
		req, _ := http.NewRequest("GET", g.url(path), nil)
		req.Host = "shop.example.com:8080"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Errorf("%s: upstream got Host %q, want %q", path, b, want)
		}
	}
}

// TestWeightedDirectResponse: a destination that answers directly takes
// its weighted share of the requests; the others reach the upstream.
func TestWeightedDirectResponse(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("up")) })
	rt := catchAll("split", "up")
	rt.Destinations[0].Weight = 50
	rt.Destinations = append(rt.Destinations, ir.Destination{Weight: 50, DirectResponse: &ir.DirectResponse{Status: 500}})
	g := startGateway(t, snapshot(1, []*ir.Service{svc("up", endpointOf(t, up))}, api("api", "/", rt)))
	seen := map[string]bool{}
	for i := 0; i < 400 && len(seen) < 2; i++ {
		resp, body := get(t, http.DefaultClient, g.url("/x"))
		got := resp.Status[:3] + " " + body
		if got != "200 up" && got != "500 " {
			t.Fatalf("GET /x: %q", got)
		}
		seen[got] = true
	}
	if len(seen) != 2 {
		t.Fatalf("only %v in 400 requests", seen)
	}
}

// TestHeadErrorHasNoContentType: the gateway's own error answer to a HEAD
// request names no body type (it sends no body), as Envoy's local replies
// do; a GET gets the JSON error.
func TestHeadErrorHasNoContentType(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {})
	rt := catchAll("only", "up")
	rt.Rules = []ir.Rule{{Methods: ir.MustRegexp("GET")}}
	g := startGateway(t, snapshot(1, []*ir.Service{svc("up", endpointOf(t, up))}, api("api", "/", rt)))
	resp, err := http.Head(g.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "" {
		t.Fatalf("HEAD: %d Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	req, _ := http.NewRequest("DELETE", g.url("/"), nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("DELETE: %d Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
