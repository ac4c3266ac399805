package extauthz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/flexgw/flexgw/policy"
)

// The ext_proc half of the agent's policy engine: a policy that acts on
// the response too (header-injection-flex computing an outbound header
// from an expression, http-caching-flex serving and storing responses) is
// rendered for Envoy as an ext_proc filter pointed at the agent. One gRPC
// stream is one request: the binding's built-in middleware runs in a
// goroutine on a request rebuilt from the request headers; the end of its
// chain stands for the upstream and is fed, message by message, with the
// response headers and body Envoy sends. What the middleware did becomes
// the answers: header mutations, a body mutation, or an immediate response
// when it answered the request itself (a denial, a cache hit).

var _ extprocv3.ExternalProcessorServer = (*Server)(nil)

// maxImmediateBody bounds a response the middleware writes itself and the
// agent sends back in one gRPC message (gRPC's default limit is 4 MiB; the
// cache stores at most 1 MiB per entry).
const maxImmediateBody = 3 << 20

var errBodyNotDelivered = errors.New("ext_proc: the upstream body did not reach the policy whole")

// procEvent is what the middleware's goroutine reports, in this order:
// the request passed the chain, the response head was written, the chain
// returned.
type procEvent struct {
	kind   int
	req    *http.Request // evPassed
	status int           // evHead
	header http.Header   // evHead, a copy
}

const (
	evPassed = iota
	evHead
	evDone
)

// upstreamHead is Envoy's response_headers message for the chain's end.
type upstreamHead struct {
	status int
	header http.Header
	body   bool // end_of_stream was false: a body follows
}

// upstreamBody is Envoy's response_body message (bufferedPartial: whole
// unless complete is false).
type upstreamBody struct {
	chunk    []byte
	complete bool
}

// procCall is one stream's bridge between Envoy's messages and the
// middleware running in its goroutine.
type procCall struct {
	events chan procEvent // capacity 3: the goroutine never blocks on it
	head   chan upstreamHead
	body   chan upstreamBody
	w      *chainWriter
}

func newProcCall() *procCall {
	c := &procCall{events: make(chan procEvent, 3), head: make(chan upstreamHead), body: make(chan upstreamBody)}
	c.w = &chainWriter{header: http.Header{}, onHead: func(code int, h http.Header) {
		c.events <- procEvent{kind: evHead, status: code, header: h.Clone()}
	}}
	return c
}

// forward is the end of the chain: the request goes on (Envoy sends it
// upstream), and the response Envoy reports is written back through the
// chain's writers, so the middleware sees it as from any upstream.
func (c *procCall) forward(w http.ResponseWriter, r *http.Request) {
	c.events <- procEvent{kind: evPassed, req: r}
	ctx := r.Context()
	var hd upstreamHead
	select {
	case hd = <-c.head:
	case <-ctx.Done():
		return // Envoy ended the stream before the response: nothing to write
	}
	dst := w.Header()
	for k, vs := range hd.header {
		dst[k] = vs
	}
	w.WriteHeader(hd.status)
	if !hd.body {
		return
	}
	select {
	case b := <-c.body:
		if !b.complete {
			c.w.broken = true
		}
		_, _ = w.Write(b.chunk)
	case <-ctx.Done():
		// Every writer in the chain learns the body did not arrive (a
		// cache must not store a response without it).
		c.w.broken = true
		_, _ = w.Write(nil)
	}
}

// chainWriter is the ResponseWriter at the bottom of the chain: it keeps
// what the middleware writes (the head as it leaves the chain, and the
// body).
type chainWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
	onHead func(int, http.Header)
	// broken: the upstream body arrived partially or not at all; writes
	// fail so recording writers drop the response.
	broken bool
}

func (w *chainWriter) Header() http.Header { return w.header }

func (w *chainWriter) WriteHeader(code int) {
	if w.status != 0 || code < 200 {
		return
	}
	w.status = code
	w.onHead(code, w.header)
}

func (w *chainWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.body.Len()+len(b) <= maxImmediateBody {
		w.body.Write(b)
	}
	if w.broken {
		return len(b), errBodyNotDelivered
	}
	return len(b), nil
}

// Flush is a no-op: the body goes to Envoy as one message.
func (w *chainWriter) Flush() {}

// Process implements the ExternalProcessor service.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	ctx := stream.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	one := func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	api, binding, name := one(policy.ExtProcMetaAPI), one(policy.ExtProcMetaBinding), one(policy.ExtProcMetaPolicy)
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	rh := first.GetRequestHeaders()
	if rh == nil {
		return status.Errorf(codes.InvalidArgument, "ext_proc: the first message must be request_headers (request_header_mode SEND)")
	}
	h, err := s.handler(api, binding, name)
	if err != nil {
		s.log.Error("ext_proc stream cannot run", "api", api, "binding", binding, "policy", name, "err", err)
		return stream.Send(immediateResponse(http.StatusServiceUnavailable, http.Header{"Content-Type": {"application/json"}},
			[]byte(`{"error":"policy engine: binding unavailable","policy":"`+name+`"}`)))
	}
	r, err := requestFromHeaders(ctx, rh.GetHeaders(), first.GetAttributes())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "ext_proc: %v", err)
	}
	orig := r.Header.Clone()
	c := newProcCall()
	r = r.WithContext(policy.WithRecorder(context.WithValue(r.Context(), passedKey{}, c), &recorder{api: api, s: s}))
	go func() {
		defer func() { c.events <- procEvent{kind: evDone} }()
		h.ServeHTTP(c.w, r)
	}()
	next := func() (procEvent, error) {
		select {
		case ev := <-c.events:
			return ev, nil
		case <-ctx.Done():
			return procEvent{}, ctx.Err()
		}
	}
	ev, err := next()
	if err != nil {
		return err
	}
	if ev.kind != evPassed {
		// The middleware answered the request itself.
		for ev.kind != evDone {
			if ev, err = next(); err != nil {
				return err
			}
		}
		code := c.w.status
		if code == 0 {
			code = http.StatusForbidden
		}
		return stream.Send(immediateResponse(code, c.w.header, c.w.body.Bytes()))
	}
	if err := stream.Send(&extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{
		Response: &extprocv3.CommonResponse{HeaderMutation: headerDiff(orig, ev.req.Header)},
	}}}); err != nil {
		return err
	}
	var sentBody []byte
	for {
		msg, err := stream.Recv()
		if err != nil {
			// The end of the exchange (io.EOF) or Envoy gone: the
			// goroutine ends with the stream's context.
			if status.Code(err) == codes.Canceled {
				return nil
			}
			return ignoreEOF(err)
		}
		var res *extprocv3.ProcessingResponse
		switch m := msg.GetRequest().(type) {
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			st, hdr, err := responseHead(m.ResponseHeaders.GetHeaders())
			if err != nil {
				return status.Errorf(codes.InvalidArgument, "ext_proc: %v", err)
			}
			up := hdr.Clone()
			select {
			case c.head <- upstreamHead{status: st, header: hdr, body: !m.ResponseHeaders.GetEndOfStream()}:
			case <-ctx.Done():
				return ctx.Err()
			}
			var mut *extprocv3.HeaderMutation
			if ev, err = next(); err != nil {
				return err
			}
			if ev.kind == evHead {
				mut = headerDiff(up, ev.header)
				if ev.status != st {
					mut.SetHeaders = append(mut.SetHeaders, rawHeader(":status", strconv.Itoa(ev.status), corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD))
				}
			}
			res = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{
				Response: &extprocv3.CommonResponse{HeaderMutation: mut},
			}}}
		case *extprocv3.ProcessingRequest_ResponseBody:
			b := m.ResponseBody
			sentBody = b.GetBody()
			select {
			case c.body <- upstreamBody{chunk: sentBody, complete: b.GetEndOfStream()}:
			case <-ctx.Done():
				return ctx.Err()
			}
			for ev.kind != evDone {
				if ev, err = next(); err != nil {
					return err
				}
			}
			cr := &extprocv3.CommonResponse{}
			if got := c.w.body.Bytes(); !bytes.Equal(got, sentBody) {
				cr.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: append([]byte(nil), got...)}}
			}
			res = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: cr}}}
		case *extprocv3.ProcessingRequest_RequestBody:
			res = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
		case *extprocv3.ProcessingRequest_RequestTrailers:
			res = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
		case *extprocv3.ProcessingRequest_ResponseTrailers:
			res = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
		default:
			return status.Errorf(codes.InvalidArgument, "ext_proc: unexpected %T", m)
		}
		if err := stream.Send(res); err != nil {
			return err
		}
	}
}

func ignoreEOF(err error) error {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// headerValue is a HeaderValue's value: Envoy sends raw_value (value in
// older releases).
func headerValue(h *corev3.HeaderValue) string {
	if len(h.GetRawValue()) > 0 {
		return string(h.GetRawValue())
	}
	return h.GetValue()
}

// requestFromHeaders rebuilds the downstream request from Envoy's
// request_headers; the client address comes from the source.address
// attribute the rendering asks for.
func requestFromHeaders(ctx context.Context, hm *corev3.HeaderMap, attrs map[string]*structpb.Struct) (*http.Request, error) {
	var method, path, authority, scheme string
	hdr := http.Header{}
	for _, hv := range hm.GetHeaders() {
		k, v := strings.ToLower(hv.GetKey()), headerValue(hv)
		switch k {
		case ":method":
			method = v
		case ":path":
			path = v
		case ":authority":
			authority = v
		case ":scheme":
			scheme = v
		default:
			if strings.HasPrefix(k, ":") {
				continue
			}
			hdr.Add(k, v)
		}
	}
	if method == "" || path == "" {
		return nil, fmt.Errorf("request_headers without :method or :path")
	}
	r, err := http.NewRequestWithContext(ctx, method, path, http.NoBody)
	if err != nil {
		return nil, fmt.Errorf("request %q: %w", path, err)
	}
	r.RequestURI, r.Host, r.Header = path, authority, hdr
	if authority == "" {
		r.Host = hdr.Get("Host")
	}
	r.URL.Scheme = scheme
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	for _, st := range attrs {
		if v := st.GetFields()["source.address"].GetStringValue(); v != "" {
			r.RemoteAddr = v
		}
	}
	return r, nil
}

// responseHead reads :status and the headers of response_headers.
func responseHead(hm *corev3.HeaderMap) (int, http.Header, error) {
	st, hdr := 0, http.Header{}
	for _, hv := range hm.GetHeaders() {
		k, v := strings.ToLower(hv.GetKey()), headerValue(hv)
		if k == ":status" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 100 || n > 599 {
				return 0, nil, fmt.Errorf("bad :status %q", v)
			}
			st = n
			continue
		}
		if strings.HasPrefix(k, ":") {
			continue
		}
		hdr.Add(k, v)
	}
	if st == 0 {
		return 0, nil, errors.New("response_headers without :status")
	}
	return st, hdr, nil
}

func rawHeader(k, v string, action corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, RawValue: []byte(v)}, AppendAction: action}
}

// headerDiff is the mutation turning before into after.
func headerDiff(before, after http.Header) *extprocv3.HeaderMutation {
	m := &extprocv3.HeaderMutation{}
	m.SetHeaders, m.RemoveHeaders = headerChanges(before, after, true)
	return m
}

// immediateResponse answers the request without sending it upstream.
// Content-Length is Envoy's to set for a local reply.
func immediateResponse(code int, h http.Header, body []byte) *extprocv3.ProcessingResponse {
	h = h.Clone()
	h.Del("Content-Length")
	im := &extprocv3.ImmediateResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode(code)}, Body: append([]byte(nil), body...), Headers: headerDiff(nil, h)}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: im}}
}
