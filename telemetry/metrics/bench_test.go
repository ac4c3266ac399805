package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/observe"
	"github.com/flexgw/flexgw/telemetry/metrics"
)

// BenchmarkScrape1000Routes measures one /metrics scrape over HTTP of a
// gateway with 1,000 routes (100 APIs × 10 routes) that have all seen
// traffic: 2xx and 5xx counters, every histogram, policy decisions.
func BenchmarkScrape1000Routes(b *testing.B) {
	for _, om := range []bool{false, true} {
		name := "text"
		if om {
			name = "openmetrics"
		}
		b.Run(name, func(b *testing.B) {
			m := metrics.New(prometheus.NewRegistry(), metrics.Options{})
			h := m.Hooks()
			for a := 0; a < 100; a++ {
				api := fmt.Sprintf("api-%03d", a)
				h.EndpointHealth("ns/svc-"+api, "10.0.0.1:80", true)
				for r := 0; r < 10; r++ {
					for _, code := range []int{200, 503} {
						_, done := h.Request(context.Background(), observe.RequestInfo{API: api, Route: fmt.Sprintf("route-%d", r), Method: "GET"})
						done(&accesslog.Record{ResponseCode: code, UpstreamHost: "10.0.0.1:80", Policy: "rate-limiting-flex", PolicyOutcome: "allow"},
							observe.Timings{Total: 5 * time.Millisecond, Upstream: 4 * time.Millisecond, Service: "ns/svc-" + api, RequestBytes: 100, ResponseBytes: 900})
					}
				}
			}
			srv := httptest.NewServer(m.Handler())
			defer srv.Close()
			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			if om {
				req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
			}
			var size int64
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				size, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			b.ReportMetric(float64(size), "bytes/scrape")
		})
	}
}

// BenchmarkRequestHook is the metrics cost of one request: Request and its
// done function, as the data plane calls them.
func BenchmarkRequestHook(b *testing.B) {
	m := metrics.New(prometheus.NewRegistry(), metrics.Options{NoRuntimeCollectors: true})
	h := m.Hooks()
	info := observe.RequestInfo{API: "orders", Route: "orders-0", Method: "GET"}
	tm := observe.Timings{Total: 3 * time.Millisecond, Upstream: 2 * time.Millisecond, Service: "ns/svc"}
	rec := &accesslog.Record{ResponseCode: 200, UpstreamHost: "10.0.0.1:80"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, done := h.Request(context.Background(), info)
		done(rec, tm)
	}
}
