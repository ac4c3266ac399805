package stats

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/dataplane"
)

// BenchmarkRequestHook is the per-request cost the dashboard adds to the
// data plane (Request hook + done), run from all cores on 8 APIs.
func BenchmarkRequestHook(b *testing.B) {
	s := New(Options{})
	h := s.Hooks()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		rec := &accesslog.Record{ResponseCode: 200}
		i := 0
		for pb.Next() {
			i++
			api := apiNames[i%len(apiNames)]
			_, done := h.Request(context.Background(), dataplane.RequestInfo{API: api, Route: "r"})
			done(rec, dataplane.Timings{Total: time.Duration(i%5000) * time.Microsecond, Upstream: time.Millisecond, Service: "ns/svc"})
		}
	})
}

var apiNames = []string{"ns/a", "ns/b", "ns/c", "ns/d", "ns/e", "ns/f", "ns/g", "ns/h"}

// BenchmarkSinkWrite is the access-log sink's cost with 10 subscribers
// attached that never read (the worst case: every send is a drop).
func BenchmarkSinkWrite(b *testing.B) {
	s := New(Options{SubscriberBuffer: 1})
	for range 10 {
		if sub, _ := s.logs.subscribe(LogFilter{}, 0); sub == nil {
			b.Fatal("subscriber refused")
		}
	}
	rec := &accesslog.Record{ResponseCode: 200, Path: "/orders/1", APIInstance: "ns/a"}
	b.ReportAllocs()
	for b.Loop() {
		s.Write(rec)
	}
}

// BenchmarkTopDefault1000Routes is one uncached /api/v1/top computation
// for a dashboard with one API expanded, 1,000 routes in 50 APIs.
func BenchmarkTopDefault1000Routes(b *testing.B) {
	s := New(Options{})
	h := s.Hooks()
	rec := &accesslog.Record{ResponseCode: 200}
	for i := range 1000 {
		_, done := h.Request(context.Background(), dataplane.RequestInfo{API: fmt.Sprintf("ns/api-%02d", i/20), Route: fmt.Sprintf("route-%d", i)})
		done(rec, dataplane.Timings{Total: time.Millisecond, Service: "ns/svc"})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.topJSON(TopQuery{History: 30, Routes: []string{"ns/api-00"}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTop1000Routes is one uncached /api/v1/top computation with
// 1,000 routes that all saw traffic, every route included.
func BenchmarkTop1000Routes(b *testing.B) {
	s := New(Options{})
	h := s.Hooks()
	rec := &accesslog.Record{ResponseCode: 200}
	for i := range 1000 {
		_, done := h.Request(context.Background(), dataplane.RequestInfo{API: fmt.Sprintf("ns/api-%02d", i/20), Route: fmt.Sprintf("route-%d", i)})
		done(rec, dataplane.Timings{Total: time.Millisecond, Service: "ns/svc"})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.topJSON(TopQuery{History: 60, Routes: []string{AllRoutes}}); err != nil {
			b.Fatal(err)
		}
	}
}
