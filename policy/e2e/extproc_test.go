package e2e_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/internal/testutil"
)

// trailerProc is a real envoy.service.ext_proc.v3 processor that answers
// every phase unchanged but the response trailers, whose x-checksum it
// rewrites; it records the trailers it was sent.
type trailerProc struct {
	extprocv3.UnimplementedExternalProcessorServer
	mu   sync.Mutex
	seen []string
}

func (p *trailerProc) Process(st extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := st.Recv()
		if err != nil {
			return nil
		}
		res := &extprocv3.ProcessingResponse{}
		switch {
		case req.GetRequestHeaders() != nil:
			res.Response = &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}
		case req.GetResponseHeaders() != nil:
			res.Response = &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}
		case req.GetResponseBody() != nil:
			res.Response = &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}
		case req.GetRequestTrailers() != nil:
			var sum string
			for _, h := range req.GetRequestTrailers().GetTrailers().GetHeaders() {
				if h.GetKey() == "x-checksum" {
					sum = string(h.GetRawValue()) + h.GetValue()
				}
			}
			p.mu.Lock()
			p.seen = append(p.seen, "request:"+sum)
			p.mu.Unlock()
			res.Response = &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{HeaderMutation: &extprocv3.HeaderMutation{
				SetHeaders: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-checksum", RawValue: []byte("processed-" + sum)}}},
			}}}
		case req.GetResponseTrailers() != nil:
			var sum string
			for _, h := range req.GetResponseTrailers().GetTrailers().GetHeaders() {
				if h.GetKey() == "x-checksum" {
					sum = string(h.GetRawValue()) + h.GetValue()
				}
			}
			p.mu.Lock()
			p.seen = append(p.seen, sum)
			p.mu.Unlock()
			res.Response = &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{HeaderMutation: &extprocv3.HeaderMutation{
				SetHeaders: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-checksum", RawValue: []byte("processed-" + sum)}}},
			}}}
		default:
			res.Response = &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}
		}
		if st.Send(res) != nil {
			return nil
		}
	}
}

// TestExtProcGetsHTTP1UpstreamTrailers: native-ext-proc-flex with
// responseTrailerMode send, through the built-in data plane, in front of
// an HTTP/1.1 upstream that ends its chunked response with a trailer
// section: the processor gets the trailers, and the client gets them as
// the processor changed them, whether the body streams or is buffered.
func TestExtProcGetsHTTP1UpstreamTrailers(t *testing.T) {
	upAddr, _ := testutil.RawUpstream(t, func(testutil.RawRequest) string {
		return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npayload\r\n0\r\nX-Checksum: abc\r\nContent-Length: 1\r\n\r\n"
	})
	up := &httptest.Server{URL: "http://" + upAddr.String()}
	proc := &trailerProc{}
	addr := policytest.ServeGRPC(t, func(g *grpc.Server) { extprocv3.RegisterExternalProcessorServer(g, proc) })
	for _, mode := range []string{"none", "buffered"} {
		t.Run(mode, func(t *testing.T) {
			base := start(t, snapshotWith(t, up, pol("native-ext-proc-flex", 10, map[string]any{
				"uri": "h2://" + addr, "responseTrailerMode": "send", "responseBodyMode": mode,
			})), nil, nil)
			res, err := http.Get(base + "/t")
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || string(b) != "payload" {
				t.Fatalf("body %q %v", b, err)
			}
			if got := res.Trailer.Get("X-Checksum"); got != "processed-abc" {
				t.Errorf("client trailers %v, want the processor's X-Checksum", res.Trailer)
			}
			if _, ok := res.Trailer["Content-Length"]; ok {
				t.Errorf("a forbidden trailer reached the client: %v", res.Trailer)
			}
			proc.mu.Lock()
			seen := fmt.Sprint(proc.seen)
			proc.mu.Unlock()
			if !strings.HasSuffix(seen, "abc]") {
				t.Errorf("the processor got trailers %s, want the upstream's", seen)
			}
		})
	}
}

// TestExtProcGetsHTTP1ClientTrailers: native-ext-proc-flex with
// requestTrailerMode send, through the built-in data plane: an HTTP/1.1
// client's chunked request trailers go to the processor after the body,
// and the upstream gets them as the processor changed them (streamed or
// buffered body alike; a buffered body stays chunked for them).
func TestExtProcGetsHTTP1ClientTrailers(t *testing.T) {
	got := make(chan string, 4)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- string(b) + " " + r.Trailer.Get("X-Checksum") + " " + r.Trailer.Get("Host")
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	proc := &trailerProc{}
	addr := policytest.ServeGRPC(t, func(g *grpc.Server) { extprocv3.RegisterExternalProcessorServer(g, proc) })
	for _, mode := range []string{"streamed", "buffered"} {
		t.Run(mode, func(t *testing.T) {
			base := start(t, snapshotWith(t, up, pol("native-ext-proc-flex", 10, map[string]any{
				"uri": "h2://" + addr, "requestTrailerMode": "send", "requestBodyMode": mode,
			})), nil, nil)
			c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, "POST /in HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ndata\r\n0\r\nX-Checksum: abc\r\nHost: evil.example\r\n\r\n")
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
			if u := <-got; u != "data processed-abc " {
				t.Errorf("upstream got %q, want the body and the processor's trailer (no Host trailer)", u)
			}
			proc.mu.Lock()
			seen := fmt.Sprint(proc.seen)
			proc.mu.Unlock()
			if !strings.Contains(seen, "request:abc") {
				t.Errorf("the processor got %s, want the client's trailers", seen)
			}
		})
	}
}
