package native_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

// procServer is a real envoy.service.ext_proc.v3 ExternalProcessor on a
// loopback port. It tags request and response headers, upper-cases the
// request body, rewrites the response body, answers /deny itself, turns
// response processing off for /override (mode_override) and never
// answers /hang (the message timeout).
type procServer struct {
	extprocv3.UnimplementedExternalProcessorServer
	mu    sync.Mutex
	kinds []string
	addr  string
}

func (s *procServer) note(k string) {
	s.mu.Lock()
	s.kinds = append(s.kinds, k)
	s.mu.Unlock()
}

func (s *procServer) Kinds() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := strings.Join(s.kinds, ",")
	s.kinds = nil
	return out
}

func hdrValue(m *corev3.HeaderMap, k string) string {
	for _, h := range m.GetHeaders() {
		if h.GetKey() == k {
			return string(h.GetRawValue()) + h.GetValue()
		}
	}
	return ""
}

func setHdr(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, RawValue: []byte(v)}}
}

func (s *procServer) Process(st extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := st.Recv()
		if err != nil {
			return nil
		}
		var res *extprocv3.ProcessingResponse
		switch {
		case req.GetRequestHeaders() != nil:
			s.note("reqHeaders")
			path := hdrValue(req.GetRequestHeaders().GetHeaders(), ":path")
			switch path {
			case "/deny":
				res = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
					Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden},
					Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHdr("x-denied-by", "processor")}},
					Body:    []byte("not here"),
				}}}
			case "/hang":
				<-st.Context().Done()
				return nil
			default:
				res = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{
					HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHdr("x-proc", "1")}, RemoveHeaders: []string{"x-drop"}},
				}}}}
				if path == "/override" {
					res.ModeOverride = &extprocfilterv3.ProcessingMode{ResponseHeaderMode: extprocfilterv3.ProcessingMode_SKIP}
				}
			}
		case req.GetRequestBody() != nil:
			b := req.GetRequestBody()
			s.note("reqBody")
			if bytes.Contains(b.GetBody(), []byte("deny-body")) {
				res = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
					Status: &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden}, Body: []byte("body refused"),
				}}}
				break
			}
			res = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
				BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: bytes.ToUpper(b.GetBody())}},
			}}}}
		case req.GetResponseHeaders() != nil:
			s.note("respHeaders:" + hdrValue(req.GetResponseHeaders().GetHeaders(), ":status"))
			res = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{
				HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHdr("x-resp-proc", "yes")}, RemoveHeaders: []string{"server"}},
			}}}}
		case req.GetResponseBody() != nil:
			s.note("respBody")
			res = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
				BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: bytes.ReplaceAll(req.GetResponseBody().GetBody(), []byte("echo"), []byte("processed"))}},
			}}}}
		case req.GetResponseTrailers() != nil:
			sum := hdrValue(req.GetResponseTrailers().GetTrailers(), "x-checksum")
			s.note("respTrailers:" + sum)
			res = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{
				HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHdr("x-checksum", "processed-"+sum), setHdr("x-trailer-proc", "yes")}},
			}}}
		default:
			s.note("other")
			continue
		}
		if err := st.Send(res); err != nil {
			return nil
		}
	}
}

func newProcServer(t testing.TB) *procServer {
	t.Helper()
	s := &procServer{}
	s.addr = policytest.ServeGRPC(t, func(g *grpc.Server) { extprocv3.RegisterExternalProcessorServer(g, s) })
	return s
}

// echoUpstream answers "echo: <request body>" and reports the request
// headers it got in X-Seen-*.
func echoUpstream(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Server", "echo")
		w.Header().Set("X-Seen-Proc", r.Header.Get("X-Proc"))
		w.Header().Set("X-Seen-Drop", r.Header.Get("X-Drop"))
		_, _ = io.WriteString(w, "echo: "+string(b))
	}))
	t.Cleanup(s.Close)
	return s
}

// procGateway runs one policy in front of a reverse proxy to target.
func procGateway(t *testing.T, target string, p *ir.Policy) *httptest.Server {
	t.Helper()
	u, _ := url.Parse(target)
	d, _ := policy.Lookup(p.Name)
	mw, err := d.Build(policy.Env{API: policytest.API()}, p)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(mw(httputil.NewSingleHostReverseProxy(u)))
	t.Cleanup(s.Close)
	return s
}

// procPost posts body to url and returns the response and its body.
func procPost(t *testing.T, url, body string, hdr ...string) (policytest.Resp, string) {
	t.Helper()
	r := policytest.Send(t, http.MethodPost, url, strings.NewReader(body), hdr...)
	return r, r.Body
}

func TestNativeExtProc(t *testing.T) {
	ps := newProcServer(t)
	up := echoUpstream(t)
	for _, mode := range []string{"buffered", "streamed", "bufferedPartial"} {
		t.Run(mode, func(t *testing.T) {
			gw := procGateway(t, up.URL, policytest.Policy("native-ext-proc-flex", map[string]any{
				"uri": "h2://" + ps.addr, "messageTimeout": 2000, "requestBodyMode": mode, "responseBodyMode": mode,
			}))
			res, body := procPost(t, gw.URL+"/orders", "hello", "X-Drop", "secret")
			if res.Status != 200 || body != "processed: HELLO" {
				t.Fatalf("got %d %q, want 200 %q", res.Status, body, "processed: HELLO")
			}
			if res.Header.Get("X-Seen-Proc") != "1" || res.Header.Get("X-Seen-Drop") != "" {
				t.Errorf("upstream did not get the processed request headers: %v", res.Header)
			}
			if res.Header.Get("X-Resp-Proc") != "yes" || res.Header.Get("Server") != "" {
				t.Errorf("response headers not processed: %v", res.Header)
			}
			if k := ps.Kinds(); k != "reqHeaders,reqBody,respHeaders:200,respBody" {
				t.Errorf("messages %q", k)
			}
		})
	}

	// Flex's defaults: headers both ways, no bodies.
	gw := procGateway(t, up.URL, policytest.Policy("native-ext-proc-flex", map[string]any{"uri": "h2://" + ps.addr}))
	res, body := procPost(t, gw.URL+"/x", "hello")
	if body != "echo: hello" || res.Header.Get("X-Resp-Proc") != "yes" {
		t.Fatalf("defaults: %q %v", body, res.Header)
	}
	if k := ps.Kinds(); k != "reqHeaders,respHeaders:200" {
		t.Errorf("default messages %q", k)
	}
	// The processor answers itself.
	res, body = procPost(t, gw.URL+"/deny", "hello")
	if res.Status != 403 || body != "not here" || res.Header.Get("X-Denied-By") != "processor" {
		t.Errorf("immediate response: %d %q %v", res.Status, body, res.Header)
	}
	ps.Kinds()
	// mode_override turns off the response headers message.
	res, _ = procPost(t, gw.URL+"/override", "")
	if res.Header.Get("X-Resp-Proc") != "" {
		t.Errorf("mode_override ignored: %v", res.Header)
	}
	if k := ps.Kinds(); k != "reqHeaders" {
		t.Errorf("override messages %q", k)
	}
	// ... unless allowModeOverride is false.
	strict := procGateway(t, up.URL, policytest.Policy("native-ext-proc-flex", map[string]any{"uri": "h2://" + ps.addr, "allowModeOverride": false}))
	if res, _ = procPost(t, strict.URL+"/override", ""); res.Header.Get("X-Resp-Proc") != "yes" {
		t.Errorf("override honoured with allowModeOverride false: %v", res.Header)
	}
}

func TestNativeExtProcFailures(t *testing.T) {
	ps := newProcServer(t)
	up := echoUpstream(t)
	// A processor that does not answer within messageTimeout: 504.
	gw := procGateway(t, up.URL, policytest.Policy("native-ext-proc-flex", map[string]any{"uri": "h2://" + ps.addr, "messageTimeout": 200}))
	res, _ := procPost(t, gw.URL+"/hang", "x")
	if res.Status != http.StatusGatewayTimeout {
		t.Fatalf("hung processor: status %d, want 504", res.Status)
	}
	// Nothing listening: 500, or through with failureModeAllow.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	closed := procGateway(t, up.URL, policytest.Policy("native-ext-proc-flex", map[string]any{"uri": "h2://" + dead}))
	if res, _ = procPost(t, closed.URL+"/x", "x"); res.Status != 500 {
		t.Fatalf("processor down: status %d, want 500", res.Status)
	}
	open := procGateway(t, up.URL, policytest.Policy("native-ext-proc-flex", map[string]any{"uri": "h2://" + dead, "failureModeAllow": true}))
	res, body := procPost(t, open.URL+"/x", "x")
	if res.Status != 200 || body != "echo: x" {
		t.Fatalf("failureModeAllow: %d %q, want the unprocessed exchange", res.Status, body)
	}
	// A buffered request body over the 1 MiB buffer: 413.
	big := procGateway(t, up.URL, policytest.Policy("native-ext-proc-flex", map[string]any{"uri": "h2://" + ps.addr, "requestBodyMode": "buffered"}))
	if res, _ = procPost(t, big.URL+"/x", strings.Repeat("a", 1<<20+1)); res.Status != 413 {
		t.Fatalf("oversized buffered body: status %d, want 413", res.Status)
	}
}

func TestNativeExtProcConfigErrors(t *testing.T) {
	d, _ := policy.Lookup("native-ext-proc-flex")
	for cfg, want := range map[string]string{
		`{}`:                      "config.uri: required",
		`{"uri":"h2://x:1/path"}`: "config.uri: a gRPC service URI has no path",
		`{"uri":"h2://x:1","requestHeaderMode":"x"}`:  "config.requestHeaderMode: must be send or skip",
		`{"uri":"h2://x:1","responseBodyMode":"all"}`: "config.responseBodyMode",
		`{"uri":"h2://x:1","messageTimeout":-1}`:      "config.messageTimeout",
		`{"uri":"h2://x:1","maxMessageTimeout":-5}`:   "config.maxMessageTimeout",
		`{"uri":"h2://x:1","failureModeAllow":"yes"}`: "config.failureModeAllow",
	} {
		err := d.Validate([]byte(cfg))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", cfg, err, want)
		}
	}
}

// TestNativeExtProcStreamsResponse: with only headers going to the
// processor (Flex's default), the response body streams: the client reads
// the first event while the upstream still holds the second.
func TestNativeExtProcStreamsResponse(t *testing.T) {
	ps := newProcServer(t)
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: two\n\n")
	}))
	t.Cleanup(up.Close)
	gw := procGateway(t, up.URL, policytest.Policy("native-ext-proc-flex", map[string]any{"uri": "h2://" + ps.addr}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gw.URL+"/events", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		close(release)
		t.Fatalf("no response head while the upstream holds its body: %v", err)
	}
	defer res.Body.Close()
	if res.Header.Get("X-Resp-Proc") != "yes" {
		t.Errorf("response headers not processed: %v", res.Header)
	}
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	close(release)
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event %q, %v: the body did not stream", line, err)
	}
}

// TestNativeExtProcStreamedRequestBody: in streamed mode each chunk goes
// to the processor as it arrives and on upstream with the processor's
// answer, as Envoy does: the upstream reads the first chunk, processed,
// before the client has sent the last.
func TestNativeExtProcStreamedRequestBody(t *testing.T) {
	ps := newProcServer(t)
	gotFirst := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var seen []byte
		buf := make([]byte, 1024)
		signalled := false
		for {
			n, err := r.Body.Read(buf)
			seen = append(seen, buf[:n]...)
			if !signalled && bytes.HasPrefix(seen, []byte("FIRST ")) {
				signalled = true
				close(gotFirst)
			}
			if err != nil {
				break
			}
		}
		_, _ = io.WriteString(w, "upstream read: "+string(seen))
	}))
	t.Cleanup(up.Close)
	gw := procGateway(t, up.URL, policytest.Policy("native-ext-proc-flex", map[string]any{
		"uri": "h2://" + ps.addr, "requestBodyMode": "streamed", "responseHeaderMode": "skip",
	}))
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw.URL+"/upload", pr)
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		done <- result{code: res.StatusCode, body: string(b)}
	}()
	if _, err := io.WriteString(pw, "first "); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gotFirst:
	case r := <-done:
		t.Fatalf("the exchange ended before the last chunk was sent: %+v", r)
	case <-ctx.Done():
		t.Fatal("the upstream never read the first chunk while the client held the last: the body was held until its end")
	}
	_, _ = io.WriteString(pw, "second")
	pw.Close()
	r := <-done
	if r.err != nil || r.code != 200 || r.body != "upstream read: FIRST SECOND" {
		t.Fatalf("got %+v, want 200 %q", r, "upstream read: FIRST SECOND")
	}
	if k := ps.Kinds(); !strings.HasPrefix(k, "reqHeaders,reqBody,reqBody") {
		t.Errorf("messages %q: want one body message per chunk", k)
	}
	// An immediate response to a chunk ends the exchange with it.
	res, body := procPost(t, gw.URL+"/upload", "please deny-body now")
	if res.Status != 403 || body != "body refused" {
		t.Fatalf("immediate response to a body chunk: %d %q", res.Status, body)
	}
}

// TestNativeExtProcResponseTrailers: with responseTrailerMode send, the
// upstream's trailers go to the processor (after the body) and reach the
// client as it changed them, whether the body streams or is buffered.
func TestNativeExtProcResponseTrailers(t *testing.T) {
	ps := newProcServer(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = io.WriteString(w, "payload")
		w.Header().Set("X-Checksum", "abc")
	}))
	t.Cleanup(up.Close)
	for _, mode := range []string{"none", "buffered"} {
		t.Run(mode, func(t *testing.T) {
			gw := procGateway(t, up.URL, policytest.Policy("native-ext-proc-flex", map[string]any{
				"uri": "h2://" + ps.addr, "responseTrailerMode": "send", "responseBodyMode": mode,
			}))
			res, err := http.Get(gw.URL + "/t")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(b) != "payload" {
				t.Fatalf("body %q", b)
			}
			if res.Trailer.Get("X-Checksum") != "processed-abc" || res.Trailer.Get("X-Trailer-Proc") != "yes" {
				t.Fatalf("trailers %v, want the processor's", res.Trailer)
			}
			if k := ps.Kinds(); !strings.HasSuffix(k, "respTrailers:abc") {
				t.Errorf("messages %q: the trailers must go last", k)
			}
		})
	}
}
