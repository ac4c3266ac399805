package stats

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/observe"
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
			_, done := h.Request(context.Background(), observe.RequestInfo{API: api, Route: "r"})
			done(rec, observe.Timings{Total: time.Duration(i%5000) * time.Microsecond, Upstream: time.Millisecond, Service: "ns/svc"})
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
	s := stats1000()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.encodeTop(TopQuery{History: 30, Routes: []string{"ns/api-00"}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTop1000Routes is one uncached /api/v1/top computation with
// 1,000 routes that all saw traffic, every route included.
func BenchmarkTop1000Routes(b *testing.B) {
	s := stats1000()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.encodeTop(TopQuery{History: 60, Routes: []string{AllRoutes}}); err != nil {
			b.Fatal(err)
		}
	}
}

// stats1000 has seen one request on each of 1,000 routes in 50 APIs in
// the last complete second (the window counts complete seconds only).
func stats1000() *Stats {
	c := newClock()
	s := New(Options{Now: c.now})
	h := s.Hooks()
	rec := &accesslog.Record{ResponseCode: 200}
	for i := range 1000 {
		_, done := h.Request(context.Background(), observe.RequestInfo{API: fmt.Sprintf("ns/api-%02d", i/20), Route: fmt.Sprintf("route-%d", i)})
		done(rec, observe.Timings{Total: time.Millisecond, Service: "ns/svc"})
	}
	c.add(time.Second)
	return s
}

// BenchmarkTopNotModified is a dashboard's refresh within the agent's
// second: the cached snapshot found and 304 answered, over the handler.
func BenchmarkTopNotModified(b *testing.B) {
	s := stats1000()
	h := s.Handler()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/top?history=30&routes=ns/api-00", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	req.Header.Set("If-None-Match", w.Header().Get("ETag"))
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusNotModified {
			b.Fatalf("status %d, want 304", w.Code)
		}
	}
}
