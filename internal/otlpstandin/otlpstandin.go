// Package otlpstandin is a stand-in OpenTelemetry collector for the tests
// and benchmarks of telemetry and of the binary (test/e2e): it receives OTLP trace exports over gRPC (the
// collector TraceService) or HTTP (POST protobuf to /v1/traces), as the
// OTLP specification defines them, and keeps the spans for inspection.
package otlpstandin

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Span is a received span with the ids hex-encoded.
type Span struct {
	Name         string
	TraceID      string
	SpanID       string
	ParentSpanID string
	Kind         tracepb.Span_SpanKind
	Attributes   map[string]string
	Resource     map[string]string
}

// Collector holds what was received.
type Collector struct {
	// Addr is host:port of the receiver.
	Addr string

	mu    sync.Mutex
	spans []Span
	stop  func()
	collectortrace.UnimplementedTraceServiceServer
}

// StartGRPC starts an OTLP/gRPC receiver on a loopback port.
func StartGRPC() (*Collector, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &Collector{Addr: ln.Addr().String()}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, c)
	go func() { _ = srv.Serve(ln) }()
	c.stop = srv.Stop
	return c, nil
}

// StartHTTP starts an OTLP/HTTP (protobuf) receiver on a loopback port,
// serving /v1/traces.
func StartHTTP() (*Collector, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &Collector{Addr: ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
			http.Error(w, "want application/x-protobuf, got "+ct, http.StatusUnsupportedMediaType)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.add(&req)
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	c.stop = func() { _ = srv.Close() }
	return c, nil
}

// Close stops the receiver.
func (c *Collector) Close() { c.stop() }

// Export implements the OTLP gRPC TraceService.
func (c *Collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.add(req)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (c *Collector) add(req *collectortrace.ExportTraceServiceRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, Span{
					Name:         s.GetName(),
					TraceID:      hex.EncodeToString(s.GetTraceId()),
					SpanID:       hex.EncodeToString(s.GetSpanId()),
					ParentSpanID: hex.EncodeToString(s.GetParentSpanId()),
					Kind:         s.GetKind(),
					Attributes:   attrs(s.GetAttributes()),
					Resource:     res,
				})
			}
		}
	}
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = x.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(x.IntValue)
		default:
			m[kv.GetKey()] = fmt.Sprint(v)
		}
	}
	return m
}

// Spans returns a copy of every span received so far.
func (c *Collector) Spans() []Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Span(nil), c.spans...)
}

// WaitSpans polls until at least n spans arrived or the deadline passes.
func (c *Collector) WaitSpans(n int, timeout time.Duration) ([]Span, error) {
	deadline := time.Now().Add(timeout)
	for {
		s := c.Spans()
		if len(s) >= n {
			return s, nil
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("stand-in collector at %s: got %d spans, want %d", c.Addr, len(s), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
