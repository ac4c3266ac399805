package native

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

// nativeExtProcConfig is native-ext-proc-flex's configuration as Flex
// documents it: parts of the request and response go to an external
// envoy.service.ext_proc.v3 processor, which may change or answer them.
type nativeExtProcConfig struct {
	URI                 string          `json:"uri"`
	MessageTimeout      policy.FlexInt  `json:"messageTimeout"` // milliseconds
	RequestHeaderMode   string          `json:"requestHeaderMode"`
	ResponseHeaderMode  string          `json:"responseHeaderMode"`
	RequestBodyMode     string          `json:"requestBodyMode"`
	ResponseBodyMode    string          `json:"responseBodyMode"`
	RequestTrailerMode  string          `json:"requestTrailerMode"`
	ResponseTrailerMode string          `json:"responseTrailerMode"`
	FailureModeAllow    policy.FlexBool `json:"failureModeAllow"`
	MaxMessageTimeout   policy.FlexInt  `json:"maxMessageTimeout"` // milliseconds
	AllowModeOverride   policy.FlexBool `json:"allowModeOverride"`
}

type nativeExtProc struct{}

func init() { policy.Register(nativeExtProc{}) }

func (nativeExtProc) Name() string { return "native-ext-proc-flex" }

// compiledExtProc is a validated native-ext-proc-flex configuration.
type compiledExtProc struct {
	uri                serviceURI
	timeout, maxTimout time.Duration
	mode               *extprocfilterv3.ProcessingMode
	failOpen           bool
	allowOverride      bool
}

func headerMode(field, s, def string) (extprocfilterv3.ProcessingMode_HeaderSendMode, error) {
	if s == "" {
		s = def
	}
	switch strings.ToLower(s) {
	case "send":
		return extprocfilterv3.ProcessingMode_SEND, nil
	case "skip":
		return extprocfilterv3.ProcessingMode_SKIP, nil
	}
	return 0, policy.FieldErr(field, "must be send or skip, got %q", s)
}

func bodyMode(field, s string) (extprocfilterv3.ProcessingMode_BodySendMode, error) {
	switch strings.ToLower(s) {
	case "", "none":
		return extprocfilterv3.ProcessingMode_NONE, nil
	case "streamed":
		return extprocfilterv3.ProcessingMode_STREAMED, nil
	case "buffered":
		return extprocfilterv3.ProcessingMode_BUFFERED, nil
	case "bufferedpartial", "buffered_partial":
		return extprocfilterv3.ProcessingMode_BUFFERED_PARTIAL, nil
	}
	return 0, policy.FieldErr(field, "must be none, streamed, buffered or bufferedPartial, got %q", s)
}

func parseNativeExtProc(raw json.RawMessage) (*compiledExtProc, error) {
	var c nativeExtProcConfig
	if err := policy.DecodeConfig(raw, &c); err != nil {
		return nil, err
	}
	out := &compiledExtProc{timeout: time.Second, failOpen: c.FailureModeAllow.Or(false), allowOverride: c.AllowModeOverride.Or(true), mode: &extprocfilterv3.ProcessingMode{}}
	var err error
	if out.uri, err = parseServiceURI("uri", c.URI, true); err != nil {
		return nil, err
	}
	if c.MessageTimeout.Set {
		if c.MessageTimeout.V <= 0 {
			return nil, policy.FieldErr("messageTimeout", "must be > 0 milliseconds, got %d", c.MessageTimeout.V)
		}
		out.timeout = time.Duration(c.MessageTimeout.V) * time.Millisecond
	}
	if c.MaxMessageTimeout.Set {
		if c.MaxMessageTimeout.V < 0 {
			return nil, policy.FieldErr("maxMessageTimeout", "must be >= 0 milliseconds, got %d", c.MaxMessageTimeout.V)
		}
		out.maxTimout = time.Duration(c.MaxMessageTimeout.V) * time.Millisecond
	}
	m := out.mode
	if m.RequestHeaderMode, err = headerMode("requestHeaderMode", c.RequestHeaderMode, "send"); err != nil {
		return nil, err
	}
	if m.ResponseHeaderMode, err = headerMode("responseHeaderMode", c.ResponseHeaderMode, "send"); err != nil {
		return nil, err
	}
	if m.RequestTrailerMode, err = headerMode("requestTrailerMode", c.RequestTrailerMode, "skip"); err != nil {
		return nil, err
	}
	if m.ResponseTrailerMode, err = headerMode("responseTrailerMode", c.ResponseTrailerMode, "skip"); err != nil {
		return nil, err
	}
	if m.RequestBodyMode, err = bodyMode("requestBodyMode", c.RequestBodyMode); err != nil {
		return nil, err
	}
	if m.ResponseBodyMode, err = bodyMode("responseBodyMode", c.ResponseBodyMode); err != nil {
		return nil, err
	}
	return out, nil
}

// Validate implements Definition.
func (nativeExtProc) Validate(raw json.RawMessage) error {
	_, err := parseNativeExtProc(raw)
	return err
}

// SecretFields implements Secrets: the configuration holds no credential.
func (nativeExtProc) SecretFields() []string { return []string{} }

// maxExtProcBody bounds a body held for the processor: Envoy's default
// per-connection buffer limit (1 MiB). A buffered body over it is refused
// with 413 (request) or 500 (response), as Envoy does; bufferedPartial
// sends the first 1 MiB and the rest follows unprocessed.
const maxExtProcBody = 1 << 20

// extProcError is a processor failure and the status the client gets.
type extProcError struct {
	status int
	err    error
}

func (e *extProcError) Error() string { return e.err.Error() }

// immediate is the processor's ImmediateResponse: the exchange ends here.
type immediate struct{ r *extprocv3.ImmediateResponse }

func (immediate) Error() string { return "immediate response" }

// procStream is one request's conversation with the processor: requests
// and answers strictly alternate, one message in flight at a time.
type procStream struct {
	c       *compiledExtProc
	client  extprocv3.ExternalProcessorClient
	ctx     context.Context
	stream  extprocv3.ExternalProcessor_ProcessClient
	cancel  context.CancelFunc
	mode    *extprocfilterv3.ProcessingMode
	timeout time.Duration
	// dead is set once the processor failed with failureModeAllow: the
	// rest of the exchange goes on unprocessed. The streamed request body
	// reads it from the goroutine sending the body upstream.
	dead atomic.Bool
	// mu serialises message exchanges: a streamed request body is sent
	// from the goroutine writing it upstream, and an upstream may answer
	// before it has read all of it.
	mu sync.Mutex
	// bodyErr is the failure (or immediate response) met while streaming
	// the request body; the client gets it instead of the upstream's
	// answer. Guarded by mu.
	bodyErr error
	// streaming: the request body goes to the processor chunk by chunk as
	// the upstream reads it.
	streaming bool
	log       *slog.Logger
	// abandoned: a message exchange was given up while in flight.
	abandoned bool
}

func (s *procStream) close() {
	// After a timeout a Send or Recv may still be running: CloseSend must
	// not race it; cancelling the stream ends both.
	if s.stream != nil && !s.abandoned {
		_ = s.stream.CloseSend()
	}
	if s.cancel != nil {
		s.cancel()
	}
}

// exchange sends one message and waits messageTimeout for its answer.
func (s *procStream) exchange(req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.abandoned {
		return nil, &extProcError{http.StatusInternalServerError, errors.New("the processor stream was given up")}
	}
	if s.stream == nil {
		// The stream's context is its own, cancelled when the request's
		// is: gRPC may look at it after the handler returned, when the
		// data plane already reuses the request's (policy.Middleware).
		ctx, cancel := context.WithCancel(context.Background())
		stop := context.AfterFunc(s.ctx, cancel)
		st, err := s.client.Process(ctx)
		if err != nil {
			stop()
			cancel()
			return nil, &extProcError{http.StatusInternalServerError, fmt.Errorf("open stream: %w", err)}
		}
		s.stream, s.cancel = st, func() { stop(); cancel() }
	}
	type result struct {
		res *extprocv3.ProcessingResponse
		err error
	}
	done := make(chan result, 1)
	go func() {
		if err := s.stream.Send(req); err != nil {
			done <- result{nil, err}
			return
		}
		res, err := s.stream.Recv()
		done <- result{res, err}
	}()
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			code := http.StatusInternalServerError
			if status.Code(r.err) == codes.DeadlineExceeded {
				code = http.StatusGatewayTimeout
			}
			return nil, &extProcError{code, r.err}
		}
		if im := r.res.GetImmediateResponse(); im != nil {
			return nil, immediate{im}
		}
		if d := r.res.GetOverrideMessageTimeout(); d != nil && s.c.maxTimout > 0 {
			if nt := d.AsDuration(); nt > 0 && nt <= s.c.maxTimout {
				s.timeout = nt
			}
		}
		return r.res, nil
	case <-t.C:
		s.abandoned = true
		s.cancel() // the goroutine ends with the stream
		return nil, &extProcError{http.StatusGatewayTimeout, errors.New("message timeout")}
	case <-s.ctx.Done():
		s.abandoned = true
		return nil, &extProcError{http.StatusInternalServerError, s.ctx.Err()}
	}
}

// overrideMode applies a header response's mode_override when allowed.
func (s *procStream) overrideMode(res *extprocv3.ProcessingResponse) {
	mo := res.GetModeOverride()
	if mo == nil || !s.c.allowOverride {
		return
	}
	m := s.mode
	if mo.RequestHeaderMode != extprocfilterv3.ProcessingMode_DEFAULT {
		m.RequestHeaderMode = mo.RequestHeaderMode
	}
	if mo.ResponseHeaderMode != extprocfilterv3.ProcessingMode_DEFAULT {
		m.ResponseHeaderMode = mo.ResponseHeaderMode
	}
	if mo.RequestTrailerMode != extprocfilterv3.ProcessingMode_DEFAULT {
		m.RequestTrailerMode = mo.RequestTrailerMode
	}
	if mo.ResponseTrailerMode != extprocfilterv3.ProcessingMode_DEFAULT {
		m.ResponseTrailerMode = mo.ResponseTrailerMode
	}
	// A body mode of NONE in an override is a value, not "unset".
	m.RequestBodyMode, m.ResponseBodyMode = mo.RequestBodyMode, mo.ResponseBodyMode
}

// headerMap is Envoy's HeaderMap of h plus pseudo headers, lower-cased
// keys, values as raw bytes (as Envoy sends them).
func headerMap(h http.Header, pseudo ...string) *corev3.HeaderMap {
	out := &corev3.HeaderMap{Headers: make([]*corev3.HeaderValue, 0, len(h)+len(pseudo)/2)}
	for i := 0; i+1 < len(pseudo); i += 2 {
		out.Headers = append(out.Headers, &corev3.HeaderValue{Key: pseudo[i], RawValue: []byte(pseudo[i+1])})
	}
	for k, vs := range h {
		lk := strings.ToLower(k)
		for _, v := range vs {
			out.Headers = append(out.Headers, &corev3.HeaderValue{Key: lk, RawValue: []byte(v)})
		}
	}
	return out
}

// mutateHeaders applies a HeaderMutation to h. Like Envoy it refuses to
// touch Host, :authority, :method, :scheme and x-envoy-*; pseudo headers
// it accepts (:path, :status) are returned for the caller.
func mutateHeaders(h http.Header, m *extprocv3.HeaderMutation) (pseudo map[string]string) {
	for _, k := range m.GetRemoveHeaders() {
		lk := strings.ToLower(k)
		if lk == "host" || strings.HasPrefix(lk, ":") || strings.HasPrefix(lk, "x-envoy-") {
			continue
		}
		h.Del(k)
	}
	set, app := http.Header{}, http.Header{}
	for _, o := range m.GetSetHeaders() {
		k := strings.ToLower(o.GetHeader().GetKey())
		if k == "host" || k == ":authority" || k == ":method" || k == ":scheme" || strings.HasPrefix(k, "x-envoy-") {
			continue
		}
		if strings.HasPrefix(k, ":") {
			v := o.GetHeader().GetValue()
			if v == "" {
				v = string(o.GetHeader().GetRawValue())
			}
			if pseudo == nil {
				pseudo = map[string]string{}
			}
			pseudo[k] = v
			continue
		}
		headerOption(set, app, h, o)
	}
	for k, vs := range set {
		h[k] = vs
	}
	for k, vs := range app {
		h[k] = append(h[k], vs...)
	}
	return pseudo
}

// applyBody returns body as the processor's BodyMutation leaves it.
func applyBody(body []byte, m *extprocv3.BodyMutation) []byte {
	switch {
	case m == nil:
		return body
	case m.GetClearBody():
		return nil
	case m.GetBody() != nil:
		return m.GetBody()
	}
	return body
}

// common is the CommonResponse of any answer kind.
func common(res *extprocv3.ProcessingResponse) *extprocv3.CommonResponse {
	switch {
	case res.GetRequestHeaders() != nil:
		return res.GetRequestHeaders().GetResponse()
	case res.GetResponseHeaders() != nil:
		return res.GetResponseHeaders().GetResponse()
	case res.GetRequestBody() != nil:
		return res.GetRequestBody().GetResponse()
	case res.GetResponseBody() != nil:
		return res.GetResponseBody().GetResponse()
	}
	return nil
}

// Build implements Definition.
func (d nativeExtProc) Build(env policy.Env, p *ir.Policy) (policy.Middleware, error) {
	c, err := parseNativeExtProc(p.Config)
	if err != nil {
		return nil, err
	}
	conn, err := serviceConn(env, c.uri)
	if err != nil {
		return nil, err
	}
	client := extprocv3.NewExternalProcessorClient(conn)
	name := d.Name()
	log := policy.Logger(env).With("policy", name, "binding", p.Binding)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mode := proto.Clone(c.mode).(*extprocfilterv3.ProcessingMode) // per request: the processor may override it
			s := &procStream{c: c, client: client, ctx: r.Context(), mode: mode, timeout: c.timeout, log: log}
			defer s.close()
			fail := func(err error) bool {
				var im immediate
				if errors.As(err, &im) {
					writeImmediate(w, r, name, im.r)
					return true
				}
				var pe *extProcError
				code := http.StatusInternalServerError
				if errors.As(err, &pe) {
					code = pe.status
				}
				if c.failOpen {
					log.Warn("external processor failed; continuing unprocessed (failureModeAllow)", "err", err)
					s.dead.Store(true)
					return false
				}
				log.Warn("external processor failed", "uri", c.uri.raw, "err", err)
				policy.Deny(w, r, name, policy.Error, code, "external processing failed")
				return true
			}
			if err := s.request(r); err != nil && fail(err) {
				return
			}
			policy.Decide(r, name, policy.Allowed)
			if s.dead.Load() || (!s.streaming && s.mode.ResponseHeaderMode == extprocfilterv3.ProcessingMode_SKIP && s.mode.ResponseBodyMode == extprocfilterv3.ProcessingMode_NONE && s.mode.ResponseTrailerMode != extprocfilterv3.ProcessingMode_SEND) {
				next.ServeHTTP(w, r)
				return
			}
			if s.mode.ResponseBodyMode == extprocfilterv3.ProcessingMode_NONE {
				// Only the headers go to the processor: the body streams
				// through (a download or server-sent events are never held).
				pw := &procWriter{ResponseWriter: w, s: s, fail: fail, head: r.Method == http.MethodHead}
				next.ServeHTTP(pw, r)
				if !pw.swallow {
					// The trailers the upstream sent are in the header map
					// until the server writes them, after this returns.
					if err := s.responseTrailers(w.Header()); err != nil {
						log.Warn("external processor failed on the response trailers; the response was already sent", "err", err)
					}
				}
				return
			}
			cw := &captureWriter{header: http.Header{}}
			next.ServeHTTP(cw, r)
			if err := s.streamErr(); err != nil {
				fail(err)
				return
			}
			if err := s.response(cw); err != nil && fail(err) {
				return
			}
			dst := w.Header()
			trailers := false
			for k, vs := range cw.header {
				if strings.HasPrefix(k, http.TrailerPrefix) {
					trailers = true
					continue
				}
				dst[k] = vs
			}
			dst.Del("Content-Length")
			if cw.status == 0 {
				cw.status = http.StatusOK
			}
			if !trailers {
				// With trailers the body goes chunked, as they need.
				dst.Set("Content-Length", strconv.Itoa(len(cw.body.Bytes())))
			}
			w.WriteHeader(cw.status)
			_, _ = w.Write(cw.body.Bytes())
			for k, vs := range cw.header {
				if strings.HasPrefix(k, http.TrailerPrefix) {
					dst[k] = vs
				}
			}
		})
	}, nil
}

// request runs the request phases: headers, body, trailers.
func (s *procStream) request(r *http.Request) error {
	m := s.mode
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	if m.RequestHeaderMode != extprocfilterv3.ProcessingMode_SKIP {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		res, err := s.exchange(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers:     headerMap(r.Header, ":authority", r.Host, ":method", r.Method, ":path", r.URL.RequestURI(), ":scheme", scheme),
			EndOfStream: !hasBody,
		}}})
		if err != nil {
			return err
		}
		cr := common(res)
		if ps := mutateHeaders(r.Header, cr.GetHeaderMutation()); ps[":path"] != "" {
			if u, err := url.ParseRequestURI(ps[":path"]); err == nil {
				r.URL.Path, r.URL.RawPath, r.URL.RawQuery = u.Path, u.RawPath, u.RawQuery
			}
		}
		s.overrideMode(res)
		if cr.GetStatus() == extprocv3.CommonResponse_CONTINUE_AND_REPLACE {
			b := applyBody(nil, cr.GetBodyMutation())
			setRequestBody(r, b)
			return nil
		}
	}
	if !hasBody || m.RequestBodyMode == extprocfilterv3.ProcessingMode_NONE {
		return nil
	}
	if m.RequestBodyMode == extprocfilterv3.ProcessingMode_STREAMED {
		// As Envoy: each chunk goes to the processor as it arrives and on
		// upstream with the processor's answer; the upstream reads the
		// first chunk before the client sent the last.
		r.Body = &streamedBody{s: s, src: r.Body, r: r}
		r.ContentLength = -1
		r.Header.Del("Content-Length")
		r.GetBody = nil
		s.streaming = true
		return nil
	}
	body, rest, err := s.body(r.Body, m.RequestBodyMode, true)
	if err != nil {
		return err
	}
	if rest != nil {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), rest), r.Body}
		r.ContentLength = -1
		r.Header.Del("Content-Length")
	} else if len(r.Trailer) > 0 {
		// Trailers only follow a chunked body: the length stays unknown
		// so the data plane can send them after it.
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = -1
		r.Header.Del("Content-Length")
		r.GetBody = nil
	} else {
		setRequestBody(r, body)
	}
	if m.RequestTrailerMode == extprocfilterv3.ProcessingMode_SEND && len(r.Trailer) > 0 && rest == nil {
		res, err := s.exchange(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: &extprocv3.HttpTrailers{Trailers: headerMap(r.Trailer)}}})
		if err != nil {
			return err
		}
		mutateHeaders(r.Trailer, res.GetRequestTrailers().GetHeaderMutation())
	}
	return nil
}

func setRequestBody(r *http.Request, b []byte) {
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	r.Header.Set("Content-Length", strconv.Itoa(len(b)))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// body sends a body in the given mode and returns it as the processor
// left it. streamed sends every chunk read as its own message;
// bufferedPartial sends at most maxExtProcBody and returns the unread rest.
func (s *procStream) body(rd io.Reader, mode extprocfilterv3.ProcessingMode_BodySendMode, request bool) (out []byte, rest io.Reader, err error) {
	send := func(chunk []byte, eos bool) ([]byte, error) { return s.sendBody(chunk, eos, request) }
	tooBig := http.StatusRequestEntityTooLarge
	if !request {
		tooBig = http.StatusInternalServerError
	}
	switch mode {
	case extprocfilterv3.ProcessingMode_STREAMED:
		buf := make([]byte, 32<<10)
		var total int
		for {
			n, rerr := io.ReadFull(rd, buf)
			eos := rerr == io.EOF || rerr == io.ErrUnexpectedEOF
			if rerr != nil && !eos {
				return nil, nil, &extProcError{http.StatusBadRequest, rerr}
			}
			if n == 0 && !eos {
				continue
			}
			if total += n; total > 64*maxExtProcBody {
				return nil, nil, &extProcError{tooBig, errors.New("streamed body over 64 MiB")}
			}
			chunk, err := send(append([]byte(nil), buf[:n]...), eos)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, chunk...)
			if eos {
				return out, nil, nil
			}
		}
	default: // buffered, bufferedPartial
		b, rerr := io.ReadAll(io.LimitReader(rd, maxExtProcBody+1))
		if rerr != nil {
			return nil, nil, &extProcError{http.StatusBadRequest, rerr}
		}
		if len(b) > maxExtProcBody {
			if mode == extprocfilterv3.ProcessingMode_BUFFERED {
				return nil, nil, &extProcError{tooBig, errors.New("buffered body over 1 MiB")}
			}
			head, err := send(b[:maxExtProcBody], false)
			if err != nil {
				return nil, nil, err
			}
			return head, io.MultiReader(bytes.NewReader(b[maxExtProcBody:]), rd), nil
		}
		out, err := send(b, true)
		return out, nil, err
	}
}

// responseHeaders sends the response headers (unless skipped) and
// applies the answer to h; it returns the status to send and, for
// CONTINUE_AND_REPLACE, the body that replaces the upstream's.
func (s *procStream) responseHeaders(status int, h http.Header, eos bool) (int, *[]byte, error) {
	if s.mode.ResponseHeaderMode == extprocfilterv3.ProcessingMode_SKIP {
		return status, nil, nil
	}
	res, err := s.exchange(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
		Headers:     headerMap(h, ":status", strconv.Itoa(status)),
		EndOfStream: eos,
	}}})
	if err != nil {
		return status, nil, err
	}
	cr := common(res)
	if ps := mutateHeaders(h, cr.GetHeaderMutation()); ps[":status"] != "" {
		if n, err := strconv.Atoi(ps[":status"]); err == nil && n >= 200 && n <= 599 {
			status = n
		}
	}
	s.overrideMode(res)
	if cr.GetStatus() == extprocv3.CommonResponse_CONTINUE_AND_REPLACE {
		b := applyBody(nil, cr.GetBodyMutation())
		return status, &b, nil
	}
	return status, nil, nil
}

// response runs the response phases on the captured upstream response.
func (s *procStream) response(cw *captureWriter) error {
	m := s.mode
	if cw.status == 0 {
		cw.status = http.StatusOK
	}
	hasBody := cw.body.Len() > 0
	status, replace, err := s.responseHeaders(cw.status, cw.header, !hasBody)
	if err != nil {
		return err
	}
	cw.status = status
	if replace != nil {
		cw.body.Reset()
		cw.body.Write(*replace)
		return nil
	}
	if !hasBody || m.ResponseBodyMode == extprocfilterv3.ProcessingMode_NONE {
		return s.responseTrailers(cw.header)
	}
	body, rest, err := s.body(bytes.NewReader(cw.body.Bytes()), m.ResponseBodyMode, false)
	if err != nil {
		return err
	}
	var tail []byte
	if rest != nil {
		tail, _ = io.ReadAll(rest)
	}
	cw.body.Reset()
	cw.body.Write(body)
	cw.body.Write(tail)
	return s.responseTrailers(cw.header)
}

// streamErr is the failure met while streaming the request body, if any.
func (s *procStream) streamErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bodyErr
}

// streamedBody is a request body sent to the processor chunk by chunk as
// the upstream reads it (STREAMED); Read returns what the processor
// made of each chunk.
type streamedBody struct {
	s       *procStream
	src     io.ReadCloser
	r       *http.Request
	buf     []byte
	pending []byte
	// final is what Read returns once the body is done (io.EOF, or the
	// failure that ended it).
	final error
}

func (b *streamedBody) Close() error { return b.src.Close() }

func (b *streamedBody) Read(p []byte) (int, error) {
	for {
		if len(b.pending) > 0 {
			n := copy(p, b.pending)
			b.pending = b.pending[n:]
			return n, nil
		}
		if b.final != nil {
			return 0, b.final
		}
		if b.buf == nil {
			b.buf = make([]byte, 32<<10)
		}
		// One read, not a full buffer: a chunk goes on as soon as the
		// client sent it.
		n, err := b.src.Read(b.buf)
		eos := err == io.EOF
		if err != nil && !eos {
			b.final = err // the client's failure: the data plane answers it
			return 0, err
		}
		if n == 0 && !eos {
			continue
		}
		chunk := append([]byte(nil), b.buf[:n]...)
		b.pending = chunk
		if !b.s.dead.Load() {
			out, err := b.s.sendBody(chunk, eos, true)
			if err != nil {
				var im immediate
				if errors.As(err, &im) || !b.s.c.failOpen {
					b.s.mu.Lock()
					b.s.bodyErr = err
					b.s.mu.Unlock()
					b.pending, b.final = nil, err
					return 0, err
				}
				b.s.log.Warn("external processor failed on the request body; continuing unprocessed (failureModeAllow)", "err", err)
				b.s.dead.Store(true)
			} else {
				b.pending = out
			}
		}
		if eos {
			b.final = io.EOF
			b.requestTrailers()
		}
	}
}

// requestTrailers sends the request's trailers, known once its body was
// read to the end, when the mode says so.
func (b *streamedBody) requestTrailers() {
	s := b.s
	if s.dead.Load() || s.mode.RequestTrailerMode != extprocfilterv3.ProcessingMode_SEND || len(b.r.Trailer) == 0 {
		return
	}
	res, err := s.exchange(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: &extprocv3.HttpTrailers{Trailers: headerMap(b.r.Trailer)}}})
	if err != nil {
		s.log.Warn("external processor failed on the request trailers", "err", err)
		return
	}
	mutateHeaders(b.r.Trailer, res.GetRequestTrailers().GetHeaderMutation())
}

// sendBody sends one body chunk and returns it as the processor left it.
func (s *procStream) sendBody(chunk []byte, eos, request bool) ([]byte, error) {
	var req *extprocv3.ProcessingRequest
	if request {
		req = &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: chunk, EndOfStream: eos}}}
	} else {
		req = &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: chunk, EndOfStream: eos}}}
	}
	res, err := s.exchange(req)
	if err != nil {
		return nil, err
	}
	return applyBody(chunk, common(res).GetBodyMutation()), nil
}

// responseTrailers sends the response's trailers (those h announces in
// Trailer, and those set with http.TrailerPrefix) when the mode says so
// and there are any, and applies the answer to h.
func (s *procStream) responseTrailers(h http.Header) error {
	if s.dead.Load() || s.mode.ResponseTrailerMode != extprocfilterv3.ProcessingMode_SEND {
		return nil
	}
	tr := http.Header{}
	for _, v := range h.Values("Trailer") {
		for _, k := range strings.Split(v, ",") {
			if k = http.CanonicalHeaderKey(strings.TrimSpace(k)); k != "" && len(h[k]) > 0 {
				tr[k] = h[k]
			}
		}
	}
	for k, vs := range h {
		if n, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			tr[http.CanonicalHeaderKey(n)] = vs
		}
	}
	if len(tr) == 0 {
		return nil // Envoy sends trailers only when there are some
	}
	before := tr.Clone()
	res, err := s.exchange(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{ResponseTrailers: &extprocv3.HttpTrailers{Trailers: headerMap(tr)}}})
	if err != nil {
		return err
	}
	mutateHeaders(tr, res.GetResponseTrailers().GetHeaderMutation())
	// Back into h: every trailer is written with the prefix form, which
	// net/http sends whether or not it was announced.
	for k := range before {
		delete(h, k)
		delete(h, http.TrailerPrefix+k)
	}
	for k, vs := range tr {
		h[http.TrailerPrefix+k] = vs
	}
	return nil
}

// writeImmediate sends the processor's ImmediateResponse to the client.
func writeImmediate(w http.ResponseWriter, r *http.Request, name string, im *extprocv3.ImmediateResponse) {
	policy.Decide(r, name, policy.Denied)
	h := w.Header()
	mutateHeaders(h, im.GetHeaders())
	code := int(im.GetStatus().GetCode())
	if code < 200 || code > 599 {
		code = http.StatusOK // Envoy's default for an unset status
	}
	h.Set("Content-Length", strconv.Itoa(len(im.GetBody())))
	w.WriteHeader(code)
	_, _ = w.Write(im.GetBody())
}

// captureWriter holds the upstream's response for the response phases.
type captureWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (c *captureWriter) Header() http.Header { return c.header }

func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 && code >= 200 {
		c.status = code
	}
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if c.body.Len()+len(b) > 64*maxExtProcBody {
		return 0, errors.New("response body over 64 MiB held for the external processor")
	}
	return c.body.Write(b)
}

// ExtProcSpec is a validated native-ext-proc-flex binding, for the
// Envoy rendering (Envoy's own ext_proc filter).
type ExtProcSpec struct {
	Host string
	Port uint32
	TLS  bool
	// MessageTimeout and MaxMessageTimeout (0: the processor may not
	// override the timeout).
	MessageTimeout, MaxMessageTimeout   time.Duration
	FailureModeAllow, AllowModeOverride bool
	// Modes are Flex's: send/skip for headers and trailers;
	// none/streamed/buffered/bufferedPartial for bodies.
	RequestHeaderMode, ResponseHeaderMode, RequestTrailerMode, ResponseTrailerMode string
	RequestBodyMode, ResponseBodyMode                                              string
}

// ExtProcSpecOf validates p's configuration and returns its spec.
func ExtProcSpecOf(p *ir.Policy) (*ExtProcSpec, error) {
	c, err := parseNativeExtProc(p.Config)
	if err != nil {
		return nil, err
	}
	hm := func(m extprocfilterv3.ProcessingMode_HeaderSendMode) string {
		if m == extprocfilterv3.ProcessingMode_SKIP {
			return "skip"
		}
		return "send"
	}
	bm := func(m extprocfilterv3.ProcessingMode_BodySendMode) string {
		switch m {
		case extprocfilterv3.ProcessingMode_STREAMED:
			return "streamed"
		case extprocfilterv3.ProcessingMode_BUFFERED:
			return "buffered"
		case extprocfilterv3.ProcessingMode_BUFFERED_PARTIAL:
			return "bufferedPartial"
		}
		return "none"
	}
	m := c.mode
	return &ExtProcSpec{Host: c.uri.host, Port: c.uri.port, TLS: c.uri.tls, MessageTimeout: c.timeout, MaxMessageTimeout: c.maxTimout,
		FailureModeAllow: c.failOpen, AllowModeOverride: c.allowOverride,
		RequestHeaderMode: hm(m.RequestHeaderMode), ResponseHeaderMode: hm(m.ResponseHeaderMode),
		RequestTrailerMode: hm(m.RequestTrailerMode), ResponseTrailerMode: hm(m.ResponseTrailerMode),
		RequestBodyMode: bm(m.RequestBodyMode), ResponseBodyMode: bm(m.ResponseBodyMode)}, nil
}

// procWriter runs the response headers phase when the upstream's header
// is written and streams the body through untouched.
type procWriter struct {
	http.ResponseWriter
	s    *procStream
	fail func(error) bool
	head bool
	// started: the header phase ran; swallow: the client already got
	// another response (the processor's, or an error), the upstream's
	// body is dropped.
	started, swallow bool
}

func (w *procWriter) WriteHeader(code int) {
	if w.started {
		if !w.swallow {
			w.ResponseWriter.WriteHeader(code)
		}
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.started = true
	h := w.ResponseWriter.Header()
	if err := w.s.streamErr(); err != nil {
		// The request body's processing failed while the upstream read
		// it: the client gets that, not the upstream's (or the data
		// plane's) answer.
		clear(h)
		w.fail(err)
		w.swallow = true
		return
	}
	eos := w.head || code == http.StatusNoContent || code == http.StatusNotModified || h.Get("Content-Length") == "0"
	status, replace, err := w.s.responseHeaders(code, h, eos)
	if err != nil {
		var im immediate
		if !errors.As(err, &im) && w.s.c.failOpen {
			w.fail(err)   // logs; the rest of the exchange goes unprocessed
			status = code // the upstream's response as it was
		} else {
			clear(h) // the upstream's headers are not the answer's
			w.fail(err)
			w.swallow = true
			return
		}
	}
	if replace != nil {
		h.Set("Content-Length", strconv.Itoa(len(*replace)))
		w.ResponseWriter.WriteHeader(status)
		_, _ = w.ResponseWriter.Write(*replace)
		w.swallow = true
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *procWriter) Write(b []byte) (int, error) {
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	if w.swallow {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps streaming responses streaming.
func (w *procWriter) Flush() {
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok && !w.swallow {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *procWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
