package dataplane

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// h1server serves a plain-HTTP listener. HTTP/1.x is handled here: the
// request head is parsed into a per-connection http.Request that is reused
// while no policy could have kept it, and the response is framed straight
// into the connection's buffer. net/http's server spends a goroutine, a
// read syscall, a context and a dozen allocations per request on top of
// that; for a proxy forwarding small requests that was a third of the CPU.
// h2c prior-knowledge connections are handed to a net/http server (h2),
// as are all TLS listeners (see bind).
type h1server struct {
	dp      *DataPlane
	handler *lnHandler
	h2      *http.Server
	handoff *connQueue

	mu       sync.Mutex
	conns    map[*h1conn]struct{}
	ln       net.Listener
	shutdown atomic.Bool
	active   sync.WaitGroup
}

// Connection states for graceful shutdown.
const (
	stateIdle int32 = iota
	stateActive
	stateClosing
)

var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

func newH1Server(dp *DataPlane, h *lnHandler, h2 *http.Server) *h1server {
	s := &h1server{dp: dp, handler: h, h2: h2, handoff: newConnQueue(), conns: map[*h1conn]struct{}{}}
	go func() { _ = h2.Serve(s.handoff) }()
	return s
}

// Serve accepts connections until the listener is closed.
func (s *h1server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	if s.shutdown.Load() { // Shutdown ran before Serve started
		ln.Close()
		return http.ErrServerClosed
	}
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay) // EMFILE and friends: back off, as net/http does
				continue
			}
			return err
		}
		delay = 0
		hc := newH1Conn(s, c)
		s.mu.Lock()
		if s.shutdown.Load() {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[hc] = struct{}{}
		s.active.Add(1)
		s.mu.Unlock()
		go hc.serve()
	}
}

// Shutdown stops accepting, closes idle connections and waits for active
// ones until ctx ends.
func (s *h1server) Shutdown(ctx context.Context) error {
	s.shutdown.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	s.mu.Unlock()
	h2err := make(chan error, 1)
	go func() { h2err <- s.h2.Shutdown(ctx) }()
	done := make(chan struct{})
	go func() { s.active.Wait(); close(done) }()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		s.closeIdle()
		select {
		case <-done:
			return <-h2err
		case <-ctx.Done():
			s.Close()
			<-h2err
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (s *h1server) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosing) {
			c.c.Close()
		}
	}
}

// Close closes the listener and every connection at once.
func (s *h1server) Close() error {
	s.shutdown.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.state.Store(stateClosing)
		c.c.Close()
	}
	s.mu.Unlock()
	s.h2.Close()
	return nil
}

func (s *h1server) forget(c *h1conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.active.Done()
}

// h1conn is one client connection.
type h1conn struct {
	srv    *h1server
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	state  atomic.Int32
	remote string

	head []byte // raw request head, reused
	// base carries the connection's context (http.LocalAddrContextKey, as
	// net/http provides); requests start as a copy of it.
	base *http.Request
	// The per-request objects are reused from request to request unless
	// a policy chain saw them (a policy may keep the *http.Request, its
	// header or body); then fresh ones are made (see fresh).
	req      *http.Request
	url      *url.URL
	hdr      http.Header
	body     *h1body
	w        *h1writer
	reuseReq bool
}

// fresh gives the connection new per-request objects.
func (c *h1conn) fresh() {
	c.req = new(http.Request)
	c.url = new(url.URL)
	c.hdr = make(http.Header, 16)
	c.body = new(h1body)
	c.w = &h1writer{hdr: make(http.Header, 8)}
	c.reuseReq = true
}

var h1bufPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 8<<10) }}
var h1wbufPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}

func newH1Conn(s *h1server, c net.Conn) *h1conn {
	hc := &h1conn{srv: s, c: c, remote: c.RemoteAddr().String()}
	hc.base = (&http.Request{}).WithContext(context.WithValue(context.Background(), http.LocalAddrContextKey, c.LocalAddr()))
	hc.br = h1bufPool.Get().(*bufio.Reader)
	hc.br.Reset(c)
	hc.bw = h1wbufPool.Get().(*bufio.Writer)
	hc.bw.Reset(c)
	hc.fresh()
	return hc
}

func (c *h1conn) serve() {
	dp := c.srv.dp
	name := c.srv.handler.name
	if dp.hooks.Conn != nil {
		dp.hooks.Conn(name, 1)
	}
	hijacked, handedOff := false, false
	defer func() {
		if p := recover(); p != nil && p != http.ErrAbortHandler {
			dp.log.Error("panic serving request", "listener", name, "remote", c.remote, "panic", fmt.Sprint(p))
		}
		if !hijacked && !handedOff {
			c.c.Close()
			if dp.hooks.Conn != nil {
				dp.hooks.Conn(name, -1)
			}
			c.br.Reset(nil)
			h1bufPool.Put(c.br)
			c.bw.Reset(nil)
			h1wbufPool.Put(c.bw)
		}
		c.srv.forget(c)
	}()
	opts := &dp.opts
	first := true
	for {
		// Wait for the next request (idle), then give the head its own
		// deadline once it starts (slow clients are cut off).
		if c.br.Buffered() == 0 {
			_ = c.c.SetReadDeadline(time.Now().Add(opts.IdleTimeout))
			if _, err := c.br.Peek(1); err != nil {
				return
			}
		}
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			return // shutting down
		}
		if first {
			first = false
			if c.isH2Preface() {
				handedOff = true
				c.handOffH2()
				return
			}
		}
		_ = c.c.SetReadDeadline(time.Now().Add(opts.ReadHeaderTimeout))
		r, status, err := c.readRequest()
		if err != nil {
			if status != 0 {
				c.writeRawError(status, err)
			}
			return
		}
		if r.Body != http.NoBody {
			// Bodies have no deadline (net/http's default too); a
			// bodiless request keeps the head deadline until the next
			// wait replaces it, saving a timer update.
			_ = c.c.SetReadDeadline(time.Time{})
		}
		w := c.w
		w.reset(c, r)
		c.srv.handler.ServeHTTP(w, r)
		if w.hijacked {
			hijacked = true
			return
		}
		if err := w.finish(); err != nil {
			return
		}
		if w.closeAfter || r.Close || c.srv.shutdown.Load() {
			_ = c.bw.Flush()
			return
		}
		if !c.body.drain() {
			_ = c.bw.Flush()
			return
		}
		if c.br.Buffered() == 0 {
			if err := c.bw.Flush(); err != nil {
				return
			}
		}
		if !c.reuseReq {
			c.fresh()
		}
		c.state.Store(stateIdle)
		if c.srv.shutdown.Load() {
			return
		}
	}
}

// isH2Preface reports whether the connection starts with the HTTP/2
// client preface. It blocks for more bytes only while what arrived is a
// prefix of the preface, so a short HTTP/1 request is not held up.
func (c *h1conn) isH2Preface() bool {
	b, _ := c.br.Peek(c.br.Buffered())
	n := min(len(b), len(h2Preface))
	if !bytes.Equal(b[:n], h2Preface[:n]) {
		return false
	}
	full, err := c.br.Peek(len(h2Preface))
	return err == nil && bytes.Equal(full, h2Preface)
}

// handOffH2 gives the connection (and what was read of it) to net/http's
// h2c server.
func (c *h1conn) handOffH2() {
	buffered, _ := c.br.Peek(c.br.Buffered())
	pre := append([]byte(nil), buffered...)
	_ = c.c.SetReadDeadline(time.Time{})
	pc := &prefixConn{Conn: c.c, r: io.MultiReader(bytes.NewReader(pre), c.c)}
	dp := c.srv.dp
	name := c.srv.handler.name
	if dp.hooks.Conn != nil {
		pc.onClose = func() { dp.hooks.Conn(name, -1) }
	}
	if !c.srv.handoff.put(pc) {
		pc.Close()
	}
}

// writeRawError answers a request that could not be parsed and closes.
func (c *h1conn) writeRawError(status int, err error) {
	msg := http.StatusText(status)
	body := msg + ": " + err.Error() + "\n"
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", status, msg, len(body), body)
	_ = c.bw.Flush()
}

// requestError carries the status a malformed request is answered with.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(msg string) error { return &requestError{http.StatusBadRequest, msg} }

// readRequest parses one request head. Keys and values are substrings of
// one string per head; the Request, URL and Header are the connection's
// own and reused.
func (c *h1conn) readRequest() (*http.Request, int, error) {
	limit := c.srv.dp.opts.MaxHeaderBytes
	c.head = c.head[:0]
	lines := 0
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if len(c.head) == 0 && len(line) == 0 {
				return nil, 0, err // client went away between requests
			}
			if isTimeout(err) {
				return nil, http.StatusRequestTimeout, errors.New("request head not received in time")
			}
			return nil, 0, err
		}
		if len(c.head)+len(line) > limit {
			return nil, http.StatusRequestHeaderFieldsTooLarge, fmt.Errorf("request head over %d bytes", limit)
		}
		c.head = append(c.head, line...)
		if err != nil { // line longer than the buffer: keep reading it
			continue
		}
		if empty := len(line) == 1 || len(line) == 2 && line[0] == '\r'; empty {
			if len(c.head) == len(line) {
				c.head = c.head[:0] // RFC 9112 2.2: ignore empty lines before a request
				continue
			}
			break
		}
		lines++
	}
	head := string(c.head)
	// Request line.
	i := bytes.IndexByte(c.head, '\n')
	reqLine := trimCR(head[:i])
	rest := head[i+1:]
	sp1 := strings.IndexByte(reqLine, ' ')
	if sp1 <= 0 {
		return nil, http.StatusBadRequest, badRequest("malformed request line")
	}
	method := reqLine[:sp1]
	sp2 := strings.IndexByte(reqLine[sp1+1:], ' ')
	if sp2 <= 0 {
		return nil, http.StatusBadRequest, badRequest("malformed request line")
	}
	uri := reqLine[sp1+1 : sp1+1+sp2]
	proto := reqLine[sp1+1+sp2+1:]
	var major, minor int
	switch proto {
	case "HTTP/1.1":
		major, minor = 1, 1
	case "HTTP/1.0":
		major, minor = 1, 0
	default:
		if len(proto) > 5 && proto[:5] == "HTTP/" {
			return nil, http.StatusHTTPVersionNotSupported, &requestError{http.StatusHTTPVersionNotSupported, "unsupported protocol " + proto}
		}
		return nil, http.StatusBadRequest, badRequest("malformed request line")
	}
	if !validMethod(method) {
		return nil, http.StatusBadRequest, badRequest("invalid method")
	}
	h := c.hdr
	clear(h)
	r := c.req
	*r = *c.base // a struct copy keeps the unexported context
	r.Method, r.Proto, r.ProtoMajor, r.ProtoMinor = method, proto, major, minor
	r.Header, r.RemoteAddr, r.RequestURI = h, c.remote, uri
	if err := c.parseURI(r, uri); err != nil {
		return nil, http.StatusBadRequest, err
	}
	// Header fields.
	vals := make([]string, 0, lines)
	var host string
	hosts := 0
	var cl string
	var te, connHdr string
	for len(rest) > 0 {
		line := rest
		if j := strings.IndexByte(rest, '\n'); j >= 0 {
			line, rest = rest[:j], rest[j+1:]
		} else {
			rest = ""
		}
		line = trimCR(line)
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, http.StatusBadRequest, badRequest("obsolete header line folding")
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !validToken(line[:colon]) {
			return nil, http.StatusBadRequest, badRequest("malformed header line")
		}
		v := trimSpace(line[colon+1:])
		if !validValue(v) {
			return nil, http.StatusBadRequest, badRequest("invalid header value")
		}
		key := canonicalString(line[:colon])
		switch key {
		case "Host":
			host = v
			hosts++
			continue
		case "Content-Length":
			if cl != "" && cl != v {
				return nil, http.StatusBadRequest, badRequest("conflicting Content-Length")
			}
			cl = v
		case "Transfer-Encoding":
			if te != "" {
				return nil, http.StatusBadRequest, badRequest("repeated Transfer-Encoding")
			}
			te = v
		case "Connection":
			connHdr = v
		}
		if old, ok := h[key]; ok {
			h[key] = append(old, v)
			continue
		}
		vals = append(vals, v)
		h[key] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	if hosts > 1 || (hosts == 0 && minor == 1) {
		return nil, http.StatusBadRequest, badRequest("missing or repeated Host header")
	}
	if host == "" && r.URL.Host != "" {
		host = r.URL.Host
	}
	r.Host = host
	// Connection management.
	if minor == 0 {
		r.Close = !headerHasToken([]string{connHdr}, "keep-alive")
	} else {
		r.Close = connHdr != "" && headerHasToken([]string{connHdr}, "close")
	}
	// Body framing.
	switch {
	case te != "":
		if cl != "" {
			return nil, http.StatusBadRequest, badRequest("both Transfer-Encoding and Content-Length")
		}
		if !asciiEqualFold(te, "chunked") {
			return nil, http.StatusNotImplemented, &requestError{http.StatusNotImplemented, "unsupported Transfer-Encoding " + te}
		}
		r.TransferEncoding = chunkedTE
		r.ContentLength = -1
		c.body.reset(c, -1, true)
		r.Body = c.body
	case cl != "":
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 || cl[0] == '+' {
			return nil, http.StatusBadRequest, badRequest("invalid Content-Length")
		}
		r.ContentLength = n
		if n == 0 {
			r.Body = http.NoBody
			c.body.reset(c, 0, false)
		} else {
			c.body.reset(c, n, false)
			r.Body = c.body
		}
	default:
		r.Body = http.NoBody
		c.body.reset(c, 0, false)
	}
	if e := h["Expect"]; len(e) > 0 {
		if !asciiEqualFold(e[0], "100-continue") {
			return nil, http.StatusExpectationFailed, &requestError{http.StatusExpectationFailed, "unsupported Expect " + e[0]}
		}
		c.body.expectContinue = r.Body != http.NoBody && minor == 1
	}
	return r, 0, nil
}

var chunkedTE = []string{"chunked"}

// parseURI fills r.URL for origin-form URIs without allocating; anything
// unusual (escapes, absolute form, "*") goes through net/url.
func (c *h1conn) parseURI(r *http.Request, uri string) error {
	simple := len(uri) > 0 && uri[0] == '/'
	for i := 0; simple && i < len(uri); i++ {
		if b := uri[i]; b == '%' || b == '#' || b <= ' ' || b >= 0x7f {
			simple = false
		}
	}
	if simple {
		u := c.url
		*u = url.URL{}
		if q := strings.IndexByte(uri, '?'); q >= 0 {
			u.Path, u.RawQuery = uri[:q], uri[q+1:]
			u.ForceQuery = u.RawQuery == ""
		} else {
			u.Path = uri
		}
		r.URL = u
		return nil
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return badRequest("malformed request target")
	}
	r.URL = u
	return nil
}

// validToken reports whether s is an RFC 9110 token (method, header name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte(`"(),/:;<=>?@[\]{}`), c) >= 0 {
			return false
		}
	}
	return true
}

func validMethod(s string) bool { return validToken(s) }

// validValue rejects control characters other than tab in a field value.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// h1body is the request body reader: Content-Length or chunked framing
// over the connection's buffer, with Expect: 100-continue answered on the
// first read.
type h1body struct {
	c              *h1conn
	remaining      int64 // for Content-Length bodies
	chunked        bool
	cr             chunkedReader
	expectContinue bool
	err            error
}

func (b *h1body) reset(c *h1conn, n int64, chunked bool) {
	*b = h1body{c: c, remaining: n, chunked: chunked}
	if chunked {
		b.cr.reset(c.br)
	}
}

func (b *h1body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.expectContinue {
		b.expectContinue = false
		if b.c.w.headerSent {
			b.err = io.EOF // answered without reading the body
			return 0, b.err
		}
		b.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := b.c.bw.Flush(); err != nil {
			b.err = err
			return 0, err
		}
	}
	if b.chunked {
		data, err := b.cr.peek(len(p))
		if err != nil {
			b.err = err
			return 0, err
		}
		n := copy(p, data)
		if err := b.cr.advance(n); err != nil {
			b.err = err
		}
		return n, nil
	}
	if b.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.c.br.Read(p)
	b.remaining -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		b.err = err
	} else if b.remaining == 0 {
		err = io.EOF
	}
	return n, err
}

// Close implements io.Closer; unread body is drained or the connection
// closed after the response.
func (b *h1body) Close() error { return nil }

// drain discards what the handler left unread so the connection can carry
// the next request; it gives up (closing the connection) past 256 KiB.
func (b *h1body) drain() bool {
	if b.err != nil && b.err != io.EOF {
		return false
	}
	if b.expectContinue {
		return false // the client waits for 100 Continue we never sent
	}
	if !b.chunked && b.remaining == 0 {
		return true // no body, or all of it read: the common case
	}
	var buf [4096]byte
	for n := 0; n <= 256<<10; {
		k, err := b.Read(buf[:])
		n += k
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}

// h1writer is the http.ResponseWriter of h1conn.
type h1writer struct {
	c           *h1conn
	req         *http.Request
	hdr         http.Header
	status      int
	wroteHeader bool // WriteHeader was called (logically)
	headerSent  bool // the head is in the connection's buffer
	chunked     bool
	noBody      bool
	cl          int64 // declared Content-Length, -1 when none
	written     int64
	closeAfter  bool
	hijacked    bool
}

func (w *h1writer) reset(c *h1conn, r *http.Request) {
	hdr := w.hdr
	clear(hdr)
	*w = h1writer{c: c, req: r, hdr: hdr, cl: -1}
}

func (w *h1writer) Header() http.Header { return w.hdr }

func (w *h1writer) WriteHeader(code int) {
	if w.hijacked || w.wroteHeader {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// Interim response (103 Early Hints): sent at once.
		writeStatusLine(w.c.bw, code)
		writeHeaders(w.c.bw, w.hdr)
		w.c.bw.WriteString("\r\n")
		_ = w.c.bw.Flush()
		return
	}
	w.wroteHeader = true
	w.status = code
}

func (w *h1writer) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerSent {
		w.sendHeader(false)
	}
	if w.noBody {
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	bw := w.c.bw
	if w.chunked {
		if len(p) == 0 {
			return 0, nil
		}
		var hb [18]byte
		bw.Write(append(strconv.AppendInt(hb[:0], int64(len(p)), 16), '\r', '\n'))
	}
	n, err := bw.Write(p)
	w.written += int64(n)
	if err == nil && w.chunked {
		_, err = bw.WriteString("\r\n")
	}
	return n, err
}

// Flush sends what is buffered to the client.
func (w *h1writer) Flush() {
	if w.hijacked {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerSent {
		w.sendHeader(false)
	}
	_ = w.c.bw.Flush()
}

// Hijack hands the connection to the caller (WebSocket tunnels).
func (w *h1writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.headerSent {
		return nil, nil, errors.New("hijack after the response head was sent")
	}
	w.hijacked = true
	c := w.c
	_ = c.c.SetDeadline(time.Time{})
	return c.c, bufio.NewReadWriter(c.br, c.bw), nil
}

// sendHeader writes the status line and headers; final is set when the
// handler has returned, so a body-less response gets Content-Length: 0.
func (w *h1writer) sendHeader(final bool) {
	w.headerSent = true
	h := w.hdr
	code := w.status
	r := w.req
	w.noBody = r.Method == http.MethodHead || code == 204 || code == 304 || (code >= 100 && code < 200)
	if v := h["Content-Length"]; len(v) > 0 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			w.cl = n
		} else {
			delete(h, "Content-Length")
		}
	}
	delete(h, "Transfer-Encoding")
	switch {
	case w.noBody:
		if code == 204 || code == 304 || code < 200 {
			delete(h, "Content-Length")
		}
	case w.cl >= 0:
	case final:
		w.cl = w.written
		h["Content-Length"] = zeroLength
	case r.ProtoMinor >= 1:
		w.chunked = true
	default:
		w.closeAfter = true // HTTP/1.0 without a length: close-delimited
	}
	if r.Close || w.c.srv.shutdown.Load() {
		w.closeAfter = true
	}
	bw := w.c.bw
	writeStatusLine(bw, code)
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	writeHeaders(bw, h)
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if w.closeAfter {
		bw.WriteString("Connection: close\r\n")
	} else if r.ProtoMinor == 0 {
		bw.WriteString("Connection: keep-alive\r\n")
	}
	bw.WriteString("\r\n")
}

var zeroLength = []string{"0"}

// finish completes the response after the handler returned.
func (w *h1writer) finish() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerSent {
		w.sendHeader(true)
	}
	if w.chunked {
		w.c.bw.WriteString("0\r\n\r\n")
	}
	if w.cl >= 0 && w.written < w.cl && !w.noBody {
		w.closeAfter = true // short body: the client must see the cut
	}
	if w.closeAfter {
		return w.c.bw.Flush()
	}
	return nil
}

func writeStatusLine(bw *bufio.Writer, code int) {
	if code == 200 {
		bw.WriteString("HTTP/1.1 200 OK\r\n")
		return
	}
	var b [3]byte
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(code))
	bw.WriteString("\r\n")
}

func writeHeaders(bw *bufio.Writer, h http.Header) {
	for k, vv := range h {
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
}

// httpDate is the current time in IMF-fixdate, recomputed once a second.
var dateCache atomic.Pointer[[2]any]

func httpDate() string {
	now := time.Now()
	sec := now.Unix()
	if p := dateCache.Load(); p != nil && p[0].(int64) == sec {
		return p[1].(string)
	}
	s := now.UTC().Format(http.TimeFormat)
	dateCache.Store(&[2]any{sec, s})
	return s
}

// connQueue is a net.Listener fed by hand: connections the h1 server
// passes to net/http (h2c).
type connQueue struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnQueue() *connQueue {
	return &connQueue{ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (q *connQueue) put(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.closed:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.closed:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.closed) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return &net.TCPAddr{} }

// prefixConn replays bytes already read before the connection's own.
type prefixConn struct {
	net.Conn
	r       io.Reader
	once    sync.Once
	onClose func()
}

func (p *prefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }

func (p *prefixConn) Close() error {
	err := p.Conn.Close()
	p.once.Do(func() {
		if p.onClose != nil {
			p.onClose()
		}
	})
	return err
}

var (
	_ http.ResponseWriter = (*h1writer)(nil)
	_ http.Flusher        = (*h1writer)(nil)
	_ http.Hijacker       = (*h1writer)(nil)
)
