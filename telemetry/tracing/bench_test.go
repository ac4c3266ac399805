package tracing_test

import (
	"context"
	"log/slog"
	"net/http"
	"testing"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/internal/otlpstandin"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/observe"
	"github.com/flexgw/flexgw/telemetry/tracing"
)

// BenchmarkRequest is the tracing cost of one request with one upstream
// attempt, at 0%, 1% and 100% sampling (spans exported to a stand-in
// collector in the same process).
func BenchmarkRequest(b *testing.B) {
	for _, tc := range []struct {
		name string
		pct  float64
	}{{"0pct", 0}, {"1pct", 1}, {"100pct", 100}} {
		b.Run(tc.name, func(b *testing.B) {
			col, err := otlpstandin.StartGRPC()
			if err != nil {
				b.Fatal(err)
			}
			defer col.Close()
			tr := tracing.New(tracing.Options{Logger: slog.New(slog.DiscardHandler)})
			defer func() { _ = tr.Shutdown(context.Background()) }()
			if err := tr.Configure(context.Background(), &ir.Tracing{
				Provider: ir.TracingProvider{Type: "opentelemetry", Properties: map[string]string{"address": "h2://" + col.Addr}},
				Sampling: ir.TracingSampling{Client: 100, Random: tc.pct, Overall: 100},
			}); err != nil {
				b.Fatal(err)
			}
			h := tr.Hooks()
			in := http.Header{"User-Agent": {"bench"}}
			info := observe.RequestInfo{Listener: "l", API: "orders", Route: "r0", Method: "GET", Header: in.Get}
			ai := observe.AttemptInfo{API: "orders", Route: "r0", Service: "ns/svc", Endpoint: "10.0.0.1:80", Method: "GET", Path: "/x"}
			var extra []string
			set := func(k, v string) { extra = append(extra, k, v) }
			rec := &accesslog.Record{}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				extra = extra[:0]
				ctx, done := h.Request(context.Background(), info)
				h.UpstreamAttempt(ctx, set, ai)(200, nil)
				*rec = accesslog.Record{ResponseCode: 200}
				done(rec, observe.Timings{})
			}
		})
	}
}
