package translate

import (
	"encoding/json"
	"runtime"
	"testing"

	"github.com/flexgw/flexgw/envoy/translate/translatetest"
	"github.com/flexgw/flexgw/ir"
)

// BenchmarkTranslate1000APIs5000Routes is one full translation (Envoy and
// proxyless gRPC resources) of the 1,000-API config. Besides B/op and
// allocs/op it reports result-MiB: the heap one Result keeps alive, which
// the agent holds per snapshot (twice across a reload).
func BenchmarkTranslate1000APIs5000Routes(b *testing.B) {
	snap := translatetest.BigSnapshot(1000, 5)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Translate(snap, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(retainedMiB(b, snap), "result-MiB")
}

// BenchmarkTranslate1000APIs5000RoutesEnvoyOnly is the translation the ADS
// server runs while no proxyless gRPC client is connected (SkipGRPC).
func BenchmarkTranslate1000APIs5000RoutesEnvoyOnly(b *testing.B) {
	snap := translatetest.BigSnapshot(1000, 5)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Translate(snap, Options{SkipGRPC: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTranslate1000APIs5000RoutesPolicies adds a policy to every API
// (enabled on each of its routes) and a policy with rules to every service:
// the per-route filter configs the translation packs.
func BenchmarkTranslate1000APIs5000RoutesPolicies(b *testing.B) {
	snap := translatetest.BigSnapshot(1000, 5)
	for _, a := range snap.APIs() {
		a.Policies = []*ir.Policy{{Name: testPolicyName, Binding: a.Key() + "#policies[0]", Order: 50, Config: json.RawMessage(`{}`)}}
	}
	for _, svc := range snap.Services {
		svc.Policies = []*ir.Policy{{Name: testPolicyName, Binding: svc.Key() + "-cors", Order: 10, Config: json.RawMessage(`{}`),
			Rules: []ir.Rule{{Methods: ir.MustRegexp("DELETE")}}}}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Translate(snap, Options{SkipGRPC: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// retainedMiB measures the live heap one translation of snap adds.
func retainedMiB(b *testing.B, snap *ir.Snapshot) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, err := Translate(snap, Options{})
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(res)
	runtime.KeepAlive(snap) // else its collection hides part of the result
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (1 << 20)
}
