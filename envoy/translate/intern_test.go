package translate

import (
	"bytes"
	"sync"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/flexgw/flexgw/envoy/translate/translatetest"
	"github.com/flexgw/flexgw/internal/testutil"
)

// allMessages lists every resource of r.
func allMessages(r *Resources) []proto.Message {
	var out []proto.Message
	out = append(out, toMsgs(r.Listeners)...)
	out = append(out, toMsgs(r.Routes)...)
	out = append(out, toMsgs(r.Clusters)...)
	out = append(out, toMsgs(r.Endpoints)...)
	return append(out, toMsgs(r.Secrets)...)
}

// The proxyless gRPC pass reuses messages the Envoy pass built (metadata,
// matches, endpoints); it must not change what Envoy gets.
func TestGRPCPassLeavesEnvoyResourcesAlone(t *testing.T) {
	for name, build := range goCases {
		t.Run(name, func(t *testing.T) {
			snap := build()
			alone, err := Translate(snap, Options{SkipGRPC: true})
			if err != nil {
				t.Fatal(err)
			}
			both, err := Translate(snap, Options{})
			if err != nil {
				t.Fatal(err)
			}
			// Compared as rendered (Any unpacked): packed bytes of a
			// message holding a map are not deterministic.
			alone.GRPC, both.GRPC = Resources{}, Resources{}
			alone.Warnings, both.Warnings = nil, nil
			if a, b := goldenYAML(t, alone), goldenYAML(t, both); !bytes.Equal(a, b) {
				t.Errorf("the Envoy resources differ when the gRPC resources are built too:\n%s", testutil.FirstDiff(a, b))
			}
		})
	}
}

// The ADS cache marshals resources from several goroutines; shared
// sub-messages must marshal to the same bytes concurrently (run with -race).
func TestSharedMessagesMarshalConcurrently(t *testing.T) {
	res, err := Translate(translatetest.BigSnapshot(30, 5), Options{})
	if err != nil {
		t.Fatal(err)
	}
	msgs := append(allMessages(&res.Envoy), allMessages(&res.GRPC)...)
	opts := proto.MarshalOptions{Deterministic: true}
	want := make([][]byte, len(msgs))
	for i, m := range msgs {
		if want[i], err = opts.Marshal(m); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			// Each goroutine walks the resources in its own order so
			// different parents of a shared message marshal at once.
			for k := range msgs {
				i := (k*(g+1) + g) % len(msgs)
				got, err := opts.Marshal(msgs[i])
				if err != nil || !bytes.Equal(got, want[i]) {
					errs <- "resource marshalled differently under concurrency"
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// What a large config repeats is built once: this pins the sharing that
// keeps a translation's memory down (intern.go), where a regression would
// otherwise only show as a bigger number in the benchmark.
func TestRepeatedSubMessagesAreShared(t *testing.T) {
	res, err := Translate(translatetest.BigSnapshot(4, 3), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var envoyRoutes []*routev3.Route
	for _, rc := range res.Envoy.Routes {
		envoyRoutes = append(envoyRoutes, rc.VirtualHosts[0].Routes...)
	}
	var first *routev3.RouteAction
	var method *routev3.HeaderMatcher
	for _, r := range envoyRoutes {
		act := r.GetRoute()
		if act == nil {
			continue // not-found routes
		}
		if first == nil {
			first, method = act, r.Match.Headers[0]
		}
		if act.Timeout != first.Timeout || act.RetryPolicy != first.RetryPolicy {
			t.Fatalf("route %s: timeout and retry policy not shared", r.Name)
		}
		if r.Match.Headers[0] != method {
			t.Fatalf("route %s: :method matcher not shared", r.Name)
		}
	}
	// A route's Envoy and gRPC variants share its metadata and its match.
	byName := map[string]*routev3.Route{}
	for _, r := range envoyRoutes {
		byName[r.Name] = r
	}
	for _, rc := range res.GRPC.Routes {
		for _, g := range rc.VirtualHosts[0].Routes {
			e := byName[g.Name]
			if e == nil {
				t.Fatalf("gRPC route %s has no Envoy route of the same name", g.Name)
			}
			if e.Metadata != g.Metadata || e.Match != g.Match {
				t.Errorf("route %s: Envoy and gRPC variants do not share metadata and match", g.Name)
			}
		}
	}
	// EDS endpoints are the same message for Envoy and gRPC clients.
	for i, cla := range res.Envoy.Endpoints {
		if res.GRPC.Endpoints[i] != cla {
			t.Errorf("cluster load assignment %s not shared", cla.ClusterName)
		}
	}
}
