// Package h2 is the built-in data plane's HTTP/2 server (RFC 9113): one
// goroutine per connection reads frames and a handler goroutine per stream
// answers it, with the response frames of every stream appended to one
// connection buffer that whoever finds it unwritten writes, so the frames
// that pile up while a write is under way leave in the next single write.
//
// Compared with golang.org/x/net/http2's server, which it replaces on the
// data plane, a response costs no channel round trip to a serving
// goroutine and no flush per frame: a small response is one HEADERS and
// one DATA frame appended under the connection's lock, and one write
// carries the responses of many streams under load. Frames are parsed with
// x/net's Framer and header blocks coded with its hpack package.
//
// Limits: concurrent streams (REFUSED_STREAM past it), header list size
// (431 past it, the connection closed when the encoded block is far past
// it), CONTINUATION frames per header block, queued control frames (a
// client that sends SETTINGS or PING and never reads is closed), flow
// control windows in both directions (overflow is FLOW_CONTROL_ERROR).
// Rapid-reset accounting stays in dataplane/internal/h2guard, which the
// caller wraps the connection in.
package h2

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/flexgw/flexgw/dataplane/internal/h1"
)

// Options configure a Server.
type Options struct {
	Handler http.Handler
	// MaxHeaderBytes bounds a request's header list (RFC 9113 6.5.2
	// SETTINGS_MAX_HEADER_LIST_SIZE). Default 1 MiB.
	MaxHeaderBytes int
	// MaxConcurrentStreams bounds the streams a connection runs at once.
	// Default 250.
	MaxConcurrentStreams uint32
	// IdleTimeout closes a connection without streams. Default 3 minutes.
	IdleTimeout time.Duration
	// PrefaceTimeout bounds the wait for the client preface. Default 10s.
	PrefaceTimeout time.Duration
	// BaseContext is the parent of every request's context.
	BaseContext context.Context
	Logger      *slog.Logger
}

// Server serves HTTP/2 connections handed to ServeConn.
type Server struct {
	opts     Options
	mu       sync.Mutex
	conns    map[*conn]struct{}
	shutdown atomic.Bool
	wg       sync.WaitGroup
}

// Protocol constants (RFC 9113).
const (
	initialWindow     = 65535
	streamRecvWindow  = 1 << 20 // what a stream may send before we read it
	connRecvWindow    = 1 << 20
	maxWindow         = 1<<31 - 1
	maxContinuations  = 32      // CONTINUATION frames per header block
	maxControlPending = 1 << 20 // unwritten bytes before a flooding client is closed
	defaultFrameSize  = 16384
	// closeWriteTimeout bounds the last writes of a closing connection.
	closeWriteTimeout = 5 * time.Second
)

// NewServer returns a server answering with o.Handler.
func NewServer(o Options) *Server {
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 1 << 20
	}
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = 250
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 3 * time.Minute
	}
	if o.PrefaceTimeout <= 0 {
		o.PrefaceTimeout = 10 * time.Second
	}
	if o.BaseContext == nil {
		o.BaseContext = context.Background()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: o, conns: map[*conn]struct{}{}}
}

// ServeConn serves c (after TLS, ALPN h2, or h2c with prior knowledge)
// until the client leaves, an error or Shutdown/Close; ts is the TLS state
// requests report (nil in clear). It returns when the connection is closed
// and every stream's handler returned.
func (s *Server) ServeConn(c net.Conn, ts *tls.ConnectionState) {
	cc := &conn{
		srv:         s,
		nc:          c,
		tls:         ts,
		streams:     map[uint32]*stream{},
		sendWin:     initialWindow,
		peerInitWin: initialWindow,
		peerFrame:   defaultFrameSize,
		recvWin:     connRecvWindow,
		remote:      c.RemoteAddr().String(),
	}
	cc.cond.L = &cc.mu
	cc.henc = hpack.NewEncoder(&cc.hbuf)
	cc.ctx = context.WithValue(s.opts.BaseContext, http.LocalAddrContextKey, c.LocalAddr())
	s.mu.Lock()
	if s.shutdown.Load() {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.conns[cc] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, cc)
		s.mu.Unlock()
		s.wg.Done()
	}()
	cc.serve()
}

// Shutdown sends GOAWAY on every connection, closes each once its streams
// are done, and waits for that until ctx ends (then closes the rest).
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Store(true)
	s.mu.Lock()
	for c := range s.conns {
		c.goAway(http2.ErrCodeNo, false)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
}

// Close closes every connection at once.
func (s *Server) Close() error {
	s.shutdown.Store(true)
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	return nil
}

// conn is one HTTP/2 connection. The reading goroutine owns the framer,
// the hpack decoder and stream creation; mu guards everything handler
// goroutines share with it: the stream table, both send windows, the
// output buffer and the hpack encoder.
type conn struct {
	srv    *Server
	nc     net.Conn
	tls    *tls.ConnectionState
	ctx    context.Context
	remote string

	// reader side only
	fr       *http2.Framer
	hdec     *hpack.Decoder
	lastID   uint32 // highest client stream id seen
	hdrs     headerBlock
	lastSeen atomic.Uint32 // lastID for other goroutines (GOAWAY)

	mu          sync.Mutex
	cond        sync.Cond // window changes, writes done, connection end
	streams     map[uint32]*stream
	running     int // streams whose handler has not returned
	sendWin     int32
	recvWin     int32 // connection receive window the client has left
	connPending int32 // consumed bytes not yet returned by WINDOW_UPDATE
	peerInitWin int32
	peerFrame   int
	henc        *hpack.Encoder
	hbuf        bytesBuf
	out         []byte // frames not yet written
	spare       []byte
	writing     bool
	kicked      bool // a goroutine yields before it writes c.out
	wdeadline   time.Time
	wfinal      bool // closing: the write deadline is the last one
	werr        error
	closed      bool
	goingAway   bool
	idleArmed   bool
}

type bytesBuf struct{ b []byte }

func (b *bytesBuf) Write(p []byte) (int, error) { b.b = append(b.b, p...); return len(p), nil }

// headerBlock gathers a HEADERS frame and its CONTINUATIONs.
type headerBlock struct {
	active    bool
	streamID  uint32
	endStream bool
	frames    int
	buf       []byte
}

var emptyRequest = &http.Request{}

var errConnClosed = errors.New("h2: connection closed")
var errStreamReset = errors.New("h2: stream reset")

func (c *conn) serve() {
	defer c.teardown()
	_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.opts.PrefaceTimeout))
	br := bufio.NewReaderSize(c.nc, 16<<10)
	var pre [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil || string(pre[:]) != http2.ClientPreface {
		return
	}
	c.fr = http2.NewFramer(nil, br)
	c.fr.SetMaxReadFrameSize(defaultFrameSize)
	c.hdec = hpack.NewDecoder(4096, nil)
	c.hdec.SetMaxStringLength(c.srv.opts.MaxHeaderBytes)

	c.mu.Lock()
	c.out = appendSettings(c.out, []http2.Setting{
		{ID: http2.SettingMaxConcurrentStreams, Val: c.srv.opts.MaxConcurrentStreams},
		{ID: http2.SettingInitialWindowSize, Val: streamRecvWindow},
		{ID: http2.SettingMaxHeaderListSize, Val: uint32(c.srv.opts.MaxHeaderBytes)},
	})
	c.out = appendWindowUpdate(c.out, 0, connRecvWindow-initialWindow)
	c.armIdleLocked()
	c.flushLocked()
	c.mu.Unlock()

	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			switch {
			case errors.As(err, &se):
				c.resetStream(se.StreamID, se.Code)
				continue
			case errors.Is(err, http2.ErrFrameTooLarge):
				c.goAway(http2.ErrCodeFrameSize, true)
			default:
				var ce http2.ConnectionError
				if errors.As(err, &ce) {
					c.goAway(http2.ErrCode(ce), true)
				}
			}
			return
		}
		if code, ok := c.handle(f); !ok {
			c.goAway(code, true)
			return
		}
		if br.Buffered() == 0 {
			// The end of a read burst: what the frames read asked for
			// (ACKs, window updates, resets) leaves in one write.
			c.mu.Lock()
			c.flushLocked()
			closed := c.closed
			c.mu.Unlock()
			if closed {
				return
			}
		}
	}
}

// handle processes one frame; !ok ends the connection with code.
func (c *conn) handle(f http2.Frame) (code http2.ErrCode, ok bool) {
	if c.hdrs.active {
		cf, isCont := f.(*http2.ContinuationFrame)
		if !isCont || cf.StreamID != c.hdrs.streamID {
			return http2.ErrCodeProtocol, false
		}
		c.hdrs.frames++
		if c.hdrs.frames > maxContinuations || len(c.hdrs.buf)+len(cf.HeaderBlockFragment()) > c.blockLimit() {
			// A CONTINUATION flood, or a block far beyond what the
			// header list may be: not worth decoding.
			return http2.ErrCodeEnhanceYourCalm, false
		}
		c.hdrs.buf = append(c.hdrs.buf, cf.HeaderBlockFragment()...)
		if cf.HeadersEnded() {
			return c.endHeaders()
		}
		return 0, true
	}
	switch f := f.(type) {
	case *http2.HeadersFrame:
		id := f.StreamID
		if id%2 == 0 {
			return http2.ErrCodeProtocol, false
		}
		c.hdrs = headerBlock{active: true, streamID: id, endStream: f.StreamEnded(), frames: 0, buf: c.hdrs.buf[:0]}
		if len(f.HeaderBlockFragment()) > c.blockLimit() {
			return http2.ErrCodeEnhanceYourCalm, false
		}
		c.hdrs.buf = append(c.hdrs.buf, f.HeaderBlockFragment()...)
		if f.HeadersEnded() {
			return c.endHeaders()
		}
	case *http2.ContinuationFrame:
		return http2.ErrCodeProtocol, false
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.PingFrame:
		if f.StreamID != 0 {
			return http2.ErrCodeProtocol, false
		}
		if !f.IsAck() {
			c.mu.Lock()
			c.out = appendFrameHeader(c.out, 8, http2.FramePing, http2.FlagPingAck, 0)
			c.out = append(c.out, f.Data[:]...)
			flood := len(c.out) > maxControlPending
			c.mu.Unlock()
			if flood {
				return http2.ErrCodeEnhanceYourCalm, false
			}
		}
	case *http2.RSTStreamFrame:
		if f.StreamID > c.lastID {
			return http2.ErrCodeProtocol, false // idle stream
		}
		c.mu.Lock()
		if st := c.streams[f.StreamID]; st != nil {
			c.abortLocked(st, errStreamReset)
		}
		c.mu.Unlock()
	case *http2.GoAwayFrame:
		c.mu.Lock()
		c.goingAway = true
		if c.running == 0 {
			c.closed = true
		}
		c.mu.Unlock()
	case *http2.PushPromiseFrame:
		return http2.ErrCodeProtocol, false
	case *http2.PriorityFrame:
		// Priorities are advisory; every stream is served as it comes.
	}
	return 0, true
}

// blockLimit is how large an encoded header block may grow before the
// connection is closed rather than the request answered with 431.
func (c *conn) blockLimit() int { return 2*c.srv.opts.MaxHeaderBytes + 4096 }

// endHeaders decodes a complete header block: a new request, or the
// trailers of a request body.
func (c *conn) endHeaders() (http2.ErrCode, bool) {
	hb := &c.hdrs
	hb.active = false
	id := hb.streamID
	c.mu.Lock()
	st := c.streams[id]
	c.mu.Unlock()
	if id <= c.lastID {
		if st == nil || st.body == nil || st.body.isDone() {
			// HEADERS on a closed stream; its block still updates
			// the decoder's table.
			if err := c.decode(hb.buf, nil); err != nil {
				return http2.ErrCodeCompression, false
			}
			c.resetStream(id, http2.ErrCodeStreamClosed)
			return 0, true
		}
		return c.onTrailers(st, hb)
	}
	c.lastID = id
	c.lastSeen.Store(id)
	req := requestHead{}
	if err := c.decode(hb.buf, &req); err != nil {
		return http2.ErrCodeCompression, false
	}
	c.mu.Lock()
	refused := c.goingAway || uint32(c.running) >= c.srv.opts.MaxConcurrentStreams
	c.mu.Unlock()
	if refused {
		c.resetStream(id, http2.ErrCodeRefusedStream)
		return 0, true
	}
	st = &stream{c: c, id: id}
	r, status := c.newRequest(st, &req, hb.endStream)
	c.mu.Lock()
	st.sendWin = c.peerInitWin
	st.recvWin = streamRecvWindow
	c.streams[id] = st
	c.running++
	if c.running == 1 && c.idleArmed {
		c.idleArmed = false
		_ = c.nc.SetReadDeadline(time.Time{})
	}
	c.mu.Unlock()
	st.w = responseWriter{st: st, h: http.Header{}, head: r.Method == http.MethodHead}
	go st.run(r, status)
	return 0, true
}

// requestHead is a decoded request header block.
type requestHead struct {
	method, scheme, authority, path, protocol string
	h                                         http.Header
	size                                      int
	bad                                       string // why the request is malformed
	pseudoDone                                bool
	cookies                                   []string
}

func (c *conn) decode(block []byte, req *requestHead) error {
	if req == nil {
		c.hdec.SetEmitEnabled(false)
		_, err := c.hdec.Write(block)
		c.hdec.SetEmitEnabled(true)
		if err == nil {
			err = c.hdec.Close()
		}
		return err
	}
	limit := c.srv.opts.MaxHeaderBytes
	req.h = make(http.Header, 8)
	c.hdec.SetEmitFunc(func(f hpack.HeaderField) {
		req.size += len(f.Name) + len(f.Value) + 32
		if req.size > limit {
			if req.bad == "" {
				req.bad = "too large"
			}
			return
		}
		req.field(f)
	})
	_, err := c.hdec.Write(block)
	if err == nil {
		err = c.hdec.Close()
	}
	c.hdec.SetEmitFunc(nil)
	return err
}

// field applies one header field (RFC 9113 8.2, 8.3).
func (req *requestHead) field(f hpack.HeaderField) {
	if req.bad != "" {
		return
	}
	if strings.HasPrefix(f.Name, ":") {
		if req.pseudoDone {
			req.bad = "pseudo-header after regular header"
			return
		}
		var p *string
		switch f.Name {
		case ":method":
			p = &req.method
		case ":scheme":
			p = &req.scheme
		case ":authority":
			p = &req.authority
		case ":path":
			p = &req.path
		case ":protocol":
			p = &req.protocol
		default:
			req.bad = "unknown pseudo-header " + f.Name
			return
		}
		if *p != "" || f.Value == "" {
			req.bad = "duplicate or empty " + f.Name
			return
		}
		*p = f.Value
		return
	}
	req.pseudoDone = true
	if !httpguts.ValidHeaderFieldName(f.Name) || !httpguts.ValidHeaderFieldValue(f.Value) {
		req.bad = "invalid header field"
		return
	}
	for i := 0; i < len(f.Name); i++ {
		if b := f.Name[i]; b >= 'A' && b <= 'Z' {
			req.bad = "uppercase header field name"
			return
		}
	}
	switch f.Name {
	case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade":
		req.bad = "connection-specific header field " + f.Name
		return
	case "te":
		if f.Value != "trailers" {
			req.bad = "te other than trailers"
			return
		}
	case "cookie":
		req.cookies = append(req.cookies, f.Value)
		return
	}
	k := canonicalKey(f.Name)
	req.h[k] = append(req.h[k], f.Value)
}

// newRequest builds the http.Request of a stream; a status other than 0
// answers it without the handler (malformed: 400, too large: 431).
func (c *conn) newRequest(st *stream, req *requestHead, endStream bool) (*http.Request, int) {
	ctx, cancel := context.WithCancel(c.ctx)
	st.cancel = cancel
	// WithContext is the one way to give a request its context, and it
	// copies: copying an empty request and filling the copy in allocates
	// one request instead of two.
	r := emptyRequest.WithContext(ctx)
	r.Method = req.method
	r.Proto = "HTTP/2.0"
	r.ProtoMajor = 2
	r.Header = req.h
	r.Host = req.authority
	r.RemoteAddr = c.remote
	r.TLS = c.tls
	r.RequestURI = req.path
	r.URL = &url.URL{}
	r.Body = http.NoBody
	if len(req.cookies) > 0 {
		req.h["Cookie"] = []string{strings.Join(req.cookies, "; ")}
	}
	if !endStream {
		st.body = &body{st: st, remain: -1}
		st.body.cond.L = &st.body.mu
		r.Body = st.body
		r.ContentLength = -1
		if v := req.h["Content-Length"]; len(v) == 1 {
			n, err := strconv.ParseInt(v[0], 10, 64)
			if err != nil || n < 0 {
				req.bad = "bad content-length"
			} else {
				r.ContentLength, st.body.remain = n, n
			}
		} else if len(v) > 1 {
			req.bad = "multiple content-length"
		}
		if tv := req.h["Trailer"]; len(tv) > 0 {
			r.Trailer = http.Header{}
			for _, v := range tv {
				for _, k := range strings.Split(v, ",") {
					if k = strings.TrimSpace(k); k != "" {
						r.Trailer[http.CanonicalHeaderKey(k)] = nil
					}
				}
			}
			st.body.trailer = r.Trailer
		}
	} else if v := req.h["Content-Length"]; len(v) > 0 && v[0] != "0" {
		req.bad = "content-length on a request without body"
	}
	switch {
	case req.bad == "too large":
		return r, http.StatusRequestHeaderFieldsTooLarge
	case req.bad != "":
		return r, http.StatusBadRequest
	case req.method == "":
		return r, http.StatusBadRequest
	case req.method == http.MethodConnect && req.protocol == "":
		if req.path != "" || req.scheme != "" || req.authority == "" {
			return r, http.StatusBadRequest
		}
		r.URL.Host = req.authority
		r.RequestURI = req.authority
		return r, 0
	case req.path == "" || req.scheme == "" || req.protocol != "":
		return r, http.StatusBadRequest
	}
	if r.Host == "" {
		r.Host = req.h.Get("Host")
	}
	u, err := url.ParseRequestURI(req.path)
	if err != nil {
		return r, http.StatusBadRequest
	}
	r.URL = u
	return r, 0
}

func (c *conn) onTrailers(st *stream, hb *headerBlock) (http2.ErrCode, bool) {
	req := requestHead{}
	if err := c.decode(hb.buf, &req); err != nil {
		return http2.ErrCodeCompression, false
	}
	if !hb.endStream || req.method != "" || req.path != "" || req.scheme != "" || req.authority != "" || req.bad != "" {
		c.resetStream(st.id, http2.ErrCodeProtocol)
		return 0, true
	}
	b := st.body
	b.mu.Lock()
	if b.trailer != nil {
		for k, vv := range req.h {
			b.trailer[k] = vv
		}
	}
	b.mu.Unlock()
	b.finish(nil)
	return 0, true
}

func (c *conn) onData(f *http2.DataFrame) (http2.ErrCode, bool) {
	id := f.StreamID
	n := int32(f.Length)
	data := f.Data()
	pad := n - int32(len(data))
	c.mu.Lock()
	if n > c.recvWin {
		c.mu.Unlock()
		return http2.ErrCodeFlowControl, false
	}
	c.recvWin -= n
	st := c.streams[id]
	if id > c.lastID {
		c.mu.Unlock()
		return http2.ErrCodeProtocol, false // an idle stream
	}
	if st == nil || st.body == nil || st.reset || st.body.isDone() {
		// DATA the client sent before it learnt the stream ended (a
		// response before the whole upload, a reset, a refusal): counted
		// and dropped, no reset per frame (RFC 9113 5.1 lets a closed
		// stream ignore frames), which h2guard would count against a
		// legitimate client.
		c.returnLocked(nil, n)
		c.mu.Unlock()
		if st != nil && st.body != nil && !st.reset && st.body.isDone() {
			c.resetStream(id, http2.ErrCodeStreamClosed) // DATA after END_STREAM
		}
		return 0, true
	}
	if n > st.recvWin {
		c.returnLocked(nil, n)
		c.mu.Unlock()
		c.resetStream(id, http2.ErrCodeFlowControl)
		return 0, true
	}
	st.recvWin -= n
	// Padding counts against the windows but is never read: returned now.
	c.returnLocked(st, pad)
	c.mu.Unlock()
	if code := st.body.put(data, f.StreamEnded()); code != 0 {
		c.resetStream(id, code)
	}
	return 0, true
}

// returnWindow gives n bytes back to the client: to the connection
// window, and with st to the stream's. Updates go out in batches (64 KiB
// for the connection, 16 KiB for a stream), far below the windows, so a
// client never waits on a batch.
func (c *conn) returnWindow(st *stream, n int32) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	c.returnLocked(st, n)
	c.mu.Unlock()
}

func (c *conn) returnLocked(st *stream, n int32) {
	send := false
	c.connPending += n
	if c.connPending >= 64<<10 {
		c.out = appendWindowUpdate(c.out, 0, uint32(c.connPending))
		c.recvWin += c.connPending
		c.connPending = 0
		send = true
	}
	if st != nil && !st.reset {
		st.recvPending += n
		if st.recvPending >= 16<<10 {
			c.out = appendWindowUpdate(c.out, st.id, uint32(st.recvPending))
			st.recvWin += st.recvPending
			st.recvPending = 0
			send = true
		}
	}
	if send {
		c.flushLocked()
	}
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) (http2.ErrCode, bool) {
	inc := int64(f.Increment)
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID == 0 {
		if int64(c.sendWin)+inc > maxWindow {
			return http2.ErrCodeFlowControl, false
		}
		c.sendWin += int32(inc)
		c.cond.Broadcast()
		return 0, true
	}
	if f.StreamID > c.lastID {
		return http2.ErrCodeProtocol, false
	}
	if st := c.streams[f.StreamID]; st != nil {
		if int64(st.sendWin)+inc > maxWindow {
			c.resetLocked(st.id, http2.ErrCodeFlowControl)
			c.abortLocked(st, errStreamReset)
			return 0, true
		}
		st.sendWin += int32(inc)
		c.cond.Broadcast()
	}
	return 0, true
}

func (c *conn) onSettings(f *http2.SettingsFrame) (http2.ErrCode, bool) {
	if f.IsAck() {
		return 0, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var code http2.ErrCode
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			if ce, ok := err.(http2.ConnectionError); ok {
				code = http2.ErrCode(ce)
			} else {
				code = http2.ErrCodeProtocol
			}
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - int64(c.peerInitWin)
			for _, st := range c.streams {
				if int64(st.sendWin)+delta > maxWindow {
					code = http2.ErrCodeFlowControl
					return errors.New("window overflow")
				}
			}
			for _, st := range c.streams {
				st.sendWin += int32(delta)
			}
			c.peerInitWin = int32(s.Val)
		case http2.SettingMaxFrameSize:
			c.peerFrame = int(s.Val)
		case http2.SettingHeaderTableSize:
			c.henc.SetMaxDynamicTableSizeLimit(s.Val)
		}
		return nil
	})
	if err != nil {
		return code, false
	}
	c.cond.Broadcast()
	c.out = appendFrameHeader(c.out, 0, http2.FrameSettings, http2.FlagSettingsAck, 0)
	if len(c.out) > maxControlPending {
		return http2.ErrCodeEnhanceYourCalm, false
	}
	return 0, true
}

// resetStream sends RST_STREAM for id and ends its stream if it runs.
func (c *conn) resetStream(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	c.resetLocked(id, code)
	if st := c.streams[id]; st != nil {
		c.abortLocked(st, errStreamReset)
	}
	c.mu.Unlock()
}

func (c *conn) resetLocked(id uint32, code http2.ErrCode) {
	c.out = appendFrameHeader(c.out, 4, http2.FrameRSTStream, 0, id)
	c.out = binary.BigEndian.AppendUint32(c.out, uint32(code))
	if len(c.out) > maxControlPending {
		c.nc.Close() // a reset flood the client never reads
	}
}

// abortLocked ends a stream early: its context is cancelled, its body
// reads fail and its writes are dropped.
func (c *conn) abortLocked(st *stream, err error) {
	if st.reset {
		return
	}
	st.reset = true
	st.cancel()
	if st.body != nil {
		st.body.finish(err)
	}
	c.cond.Broadcast()
}

// goAway sends GOAWAY with the last stream id; hard closes the
// connection after the write, soft lets running streams finish.
func (c *conn) goAway(code http2.ErrCode, hard bool) {
	c.mu.Lock()
	c.goingAway = true
	c.out = appendFrameHeader(c.out, 8, http2.FrameGoAway, 0, 0)
	c.out = binary.BigEndian.AppendUint32(c.out, c.lastIDShared())
	c.out = binary.BigEndian.AppendUint32(c.out, uint32(code))
	if hard {
		c.finalWriteDeadlineLocked()
	}
	for hard && c.writing {
		c.cond.Wait()
	}
	c.flushLocked()
	if hard || c.running == 0 {
		c.closed = true
		c.nc.Close()
	}
	c.mu.Unlock()
}

// lastIDShared is the last stream id for GOAWAY. Only the reader writes
// lastID; a GOAWAY from Shutdown reads it racily, so it is read through
// the atomic copy the reader keeps in step.
func (c *conn) lastIDShared() uint32 { return c.lastSeen.Load() }

// armIdleLocked starts the idle timeout (no stream runs).
func (c *conn) armIdleLocked() {
	c.idleArmed = true
	_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.opts.IdleTimeout))
}

// flushLocked writes c.out unless a write is under way (whose goroutine
// then writes it next). mu is released during the write.
func (c *conn) flushLocked() {
	for !c.writing && len(c.out) > 0 && c.werr == nil {
		c.writing = true
		if now := time.Now(); !c.wfinal && now.After(c.wdeadline.Add(-c.srv.opts.IdleTimeout/2)) {
			// A client that stops reading is given up after
			// IdleTimeout without progress (re-armed at most every half
			// of it, not per write).
			c.wdeadline = now.Add(c.srv.opts.IdleTimeout)
			_ = c.nc.SetWriteDeadline(c.wdeadline)
		}
		buf := c.out
		c.out = c.spare[:0]
		c.mu.Unlock()
		_, err := c.nc.Write(buf)
		c.mu.Lock()
		c.writing = false
		c.cond.Broadcast()
		if cap(buf) <= 64<<10 {
			c.spare = buf[:0]
		}
		if err != nil {
			c.werr = err
			c.closed = true
			c.nc.Close()
			c.cond.Broadcast()
		}
	}
}

// finalWriteDeadlineLocked bounds the last writes of a closing
// connection, so a client that stopped reading cannot hold the close up.
func (c *conn) finalWriteDeadlineLocked() {
	if !c.wfinal {
		c.wfinal = true
		_ = c.nc.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	}
}

// kickLocked writes c.out soon: unless a write is under way or about to
// start, the caller yields first, so the responses other handlers are
// about to finish join this write (one write for a burst of responses
// instead of one per stream). mu is released while yielding and writing.
func (c *conn) kickLocked() {
	if c.writing || c.kicked || len(c.out) == 0 {
		return
	}
	c.kicked = true
	c.mu.Unlock()
	runtime.Gosched()
	c.mu.Lock()
	c.kicked = false
	c.flushLocked()
}

// teardown runs when the reader stops: every stream is aborted and the
// connection closed once their handlers returned.
func (c *conn) teardown() {
	c.mu.Lock()
	c.finalWriteDeadlineLocked()
	c.flushLocked()
	c.closed = true
	c.nc.Close()
	for _, st := range c.streams {
		c.abortLocked(st, errConnClosed)
	}
	for c.running > 0 {
		c.cond.Wait()
	}
	c.mu.Unlock()
}

// stream is one request/response exchange.
type stream struct {
	c      *conn
	id     uint32
	cancel context.CancelFunc
	body   *body // nil without a request body
	w      responseWriter
	// guarded by c.mu
	sendWin     int32
	recvWin     int32 // what the client may still send on the stream
	recvPending int32 // read bytes not yet returned by WINDOW_UPDATE
	reset       bool
}

func (st *stream) run(r *http.Request, status int) {
	c := st.c
	defer st.done()
	if status != 0 {
		st.w.h.Set("Content-Type", "text/plain; charset=utf-8")
		st.w.WriteHeader(status)
		_, _ = io.WriteString(&st.w, http.StatusText(status)+"\n")
		return
	}
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				c.srv.opts.Logger.Error("h2: handler panic", "panic", v, "remote", c.remote)
			}
			st.w.aborted = true
		}
	}()
	c.srv.opts.Handler.ServeHTTP(&st.w, r)
}

// done finishes the response and retires the stream.
func (st *stream) done() {
	c := st.c
	w := &st.w
	if !w.aborted {
		w.finish()
	}
	c.mu.Lock()
	if w.aborted && !st.reset {
		c.resetLocked(st.id, http2.ErrCodeInternal)
	} else if !st.reset && st.body != nil && !st.body.isDone() {
		// The response is complete but the client is still sending:
		// tell it to stop (RFC 9113 8.1).
		c.resetLocked(st.id, http2.ErrCodeNo)
	}
	st.reset = true
	st.cancel()
	delete(c.streams, st.id)
	c.running--
	if c.running == 0 {
		if c.goingAway {
			c.finalWriteDeadlineLocked()
			for c.writing {
				c.cond.Wait() // the frames it writes come first
			}
			c.flushLocked()
			c.closed = true
			c.nc.Close()
		} else {
			c.armIdleLocked()
		}
	}
	c.kickLocked()
	c.cond.Broadcast()
	c.mu.Unlock()
	if st.body != nil {
		st.body.release()
	}
}

// responseWriter is a stream's http.ResponseWriter. The head and body
// are kept until the handler flushes, grows the body past a frame, or
// returns, so a small response is one HEADERS and one DATA frame.
type responseWriter struct {
	st          *stream
	h           http.Header
	status      int
	wroteHeader bool
	sentHeader  bool
	buf         []byte
	aborted     bool
	head        bool     // HEAD: the body is dropped
	trailerKeys []string // declared with the Trailer header
}

func (w *responseWriter) Header() http.Header { return w.h }

func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code >= 100 && code < 200 {
		if code == http.StatusSwitchingProtocols {
			return
		}
		c := w.st.c
		c.mu.Lock()
		if !w.st.reset {
			c.appendHeadersLocked(w.st.id, code, w.h, false, false)
			c.flushLocked()
		}
		c.mu.Unlock()
		return
	}
	w.wroteHeader = true
	w.status = code
	if tv := w.h["Trailer"]; len(tv) > 0 {
		for _, v := range tv {
			for _, k := range strings.Split(v, ",") {
				if k = strings.TrimSpace(k); k != "" {
					w.trailerKeys = append(w.trailerKeys, http.CanonicalHeaderKey(k))
				}
			}
		}
	}
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.status == http.StatusNotModified || w.status == http.StatusNoContent {
		return 0, http.ErrBodyNotAllowed
	}
	if w.head {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	if len(w.buf) >= 32<<10 {
		if err := w.push(false); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush sends what the handler wrote so far.
func (w *responseWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_ = w.push(false)
}

// push hands the head (once) and the buffered body to the connection,
// waiting for flow-control window as needed; end ends the stream.
func (w *responseWriter) push(end bool) error {
	st, c := w.st, w.st.c
	tr := w.trailers()
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.reset || c.closed {
		w.buf = w.buf[:0]
		return errStreamReset
	}
	if !w.sentHeader {
		w.sentHeader = true
		noBody := end && len(w.buf) == 0 && tr == nil
		if end && tr == nil && !w.head && w.h["Content-Length"] == nil && w.status != http.StatusNotModified && w.status != http.StatusNoContent {
			w.h["Content-Length"] = []string{strconv.Itoa(len(w.buf))}
		}
		c.appendHeadersLocked(st.id, w.status, w.h, true, noBody)
		if noBody {
			if !end {
				c.flushLocked()
			}
			return nil
		}
	}
	p := w.buf
	for len(p) > 0 || end && tr == nil {
		for (st.sendWin <= 0 || c.sendWin <= 0) && len(p) > 0 {
			if st.reset || c.closed {
				w.buf = w.buf[:0]
				return errStreamReset
			}
			c.flushLocked()
			if st.reset || c.closed {
				continue
			}
			if st.sendWin > 0 && c.sendWin > 0 {
				break
			}
			c.cond.Wait()
		}
		if st.reset || c.closed {
			w.buf = w.buf[:0]
			return errStreamReset
		}
		n := 0
		if len(p) > 0 {
			n = min(len(p), int(st.sendWin), int(c.sendWin), c.peerFrame)
		}
		last := end && tr == nil && n == len(p)
		var flags http2.Flags
		if last {
			flags = http2.FlagDataEndStream
		}
		c.out = appendFrameHeader(c.out, n, http2.FrameData, flags, st.id)
		c.out = append(c.out, p[:n]...)
		st.sendWin -= int32(n)
		c.sendWin -= int32(n)
		p = p[n:]
		if last {
			break
		}
	}
	w.buf = w.buf[:0]
	if end && tr != nil {
		c.appendHeadersLocked(st.id, 0, tr, true, true)
	}
	if !end {
		c.flushLocked() // Flush or a full buffer; at the end done writes
	}
	return nil
}

// trailers collects the trailer fields the handler set: declared ones
// and those under http.TrailerPrefix. nil when there are none.
func (w *responseWriter) trailers() http.Header {
	var tr http.Header
	for _, k := range w.trailerKeys {
		if vv := w.h[k]; len(vv) > 0 {
			if tr == nil {
				tr = http.Header{}
			}
			tr[k] = vv
		}
	}
	for k, vv := range w.h {
		if strings.HasPrefix(k, http.TrailerPrefix) && len(vv) > 0 {
			if tr == nil {
				tr = http.Header{}
			}
			tr[http.CanonicalHeaderKey(k[len(http.TrailerPrefix):])] = vv
		}
	}
	return tr
}

func (w *responseWriter) finish() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_ = w.push(true)
}

// appendHeadersLocked encodes a HEADERS frame (and CONTINUATIONs past the
// peer's frame size); status 0 is a trailer section.
func (c *conn) appendHeadersLocked(id uint32, status int, h http.Header, final, endStream bool) {
	c.hbuf.b = c.hbuf.b[:0]
	if status != 0 {
		c.henc.WriteField(hpack.HeaderField{Name: ":status", Value: statusText(status)})
		if final {
			if _, ok := h["Date"]; !ok {
				c.henc.WriteField(hpack.HeaderField{Name: "date", Value: h1.HTTPDate()})
			}
		}
	}
	for k, vv := range h {
		if skipResponseHeader(k) || status != 0 && strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		name := lowerKey(k)
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				continue
			}
			c.henc.WriteField(hpack.HeaderField{Name: name, Value: v})
		}
	}
	block := c.hbuf.b
	flags := http2.Flags(0)
	if endStream {
		flags |= http2.FlagHeadersEndStream
	}
	typ := http2.FrameHeaders
	for {
		n := min(len(block), c.peerFrame)
		f := flags
		if n == len(block) {
			f |= http2.FlagHeadersEndHeaders
		}
		c.out = appendFrameHeader(c.out, n, typ, f, id)
		c.out = append(c.out, block[:n]...)
		block = block[n:]
		if len(block) == 0 {
			return
		}
		typ, flags = http2.FrameContinuation, 0
	}
}

func skipResponseHeader(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Trailer":
		return true
	}
	return false
}

var statusTexts [600]string

func statusText(code int) string {
	if code > 0 && code < len(statusTexts) {
		if s := statusTexts[code]; s != "" {
			return s
		}
	}
	return strconv.Itoa(code)
}

var commonLower = map[string]string{}

func init() {
	for i := 100; i < len(statusTexts); i++ {
		statusTexts[i] = strconv.Itoa(i)
	}
	for _, k := range []string{"Accept-Ranges", "Age", "Cache-Control", "Content-Encoding", "Content-Language",
		"Content-Length", "Content-Type", "Date", "Etag", "Expires", "Last-Modified", "Location", "Server",
		"Set-Cookie", "Vary", "Via", "X-Request-Id", "X-Content-Type-Options", "Www-Authenticate",
		"Retry-After", "X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset", "Grpc-Status", "Grpc-Message"} {
		commonLower[k] = strings.ToLower(k)
	}
}

func lowerKey(k string) string {
	if v, ok := commonLower[k]; ok {
		return v
	}
	return strings.ToLower(k)
}

var commonCanonical = map[string]string{}

func init() {
	for _, k := range []string{"accept", "accept-encoding", "accept-language", "authorization", "cache-control",
		"content-length", "content-type", "cookie", "host", "if-modified-since", "if-none-match", "origin",
		"referer", "te", "user-agent", "x-forwarded-for", "x-request-id", "trailer", "grpc-timeout", "x-forwarded-proto"} {
		commonCanonical[k] = http.CanonicalHeaderKey(k)
	}
}

func canonicalKey(k string) string {
	if v, ok := commonCanonical[k]; ok {
		return v
	}
	return http.CanonicalHeaderKey(k)
}

func appendFrameHeader(b []byte, n int, t http2.FrameType, f http2.Flags, id uint32) []byte {
	return append(b, byte(n>>16), byte(n>>8), byte(n), byte(t), byte(f),
		byte(id>>24)&0x7f, byte(id>>16), byte(id>>8), byte(id))
}

func appendSettings(b []byte, ss []http2.Setting) []byte {
	b = appendFrameHeader(b, 6*len(ss), http2.FrameSettings, 0, 0)
	for _, s := range ss {
		b = binary.BigEndian.AppendUint16(b, uint16(s.ID))
		b = binary.BigEndian.AppendUint32(b, s.Val)
	}
	return b
}

func appendWindowUpdate(b []byte, id, inc uint32) []byte {
	b = appendFrameHeader(b, 4, http2.FrameWindowUpdate, 0, id)
	return binary.BigEndian.AppendUint32(b, inc)
}

// body is a request body: DATA the reader put, read by the handler.
type body struct {
	st      *stream
	mu      sync.Mutex
	cond    sync.Cond
	buf     []byte
	remain  int64 // declared content-length left, -1 without one
	done    bool  // the client's side ended (END_STREAM, reset, close)
	err     error // after buf: io.EOF or why the body broke
	closed  bool  // the handler is done with it: DATA is dropped
	trailer http.Header
}

// put appends DATA; a code other than 0 resets the stream.
func (b *body) put(p []byte, end bool) http2.ErrCode {
	b.mu.Lock()
	if b.remain >= 0 {
		if int64(len(p)) > b.remain || end && int64(len(p)) != b.remain {
			b.mu.Unlock()
			return http2.ErrCodeProtocol // body length differs from content-length
		}
		b.remain -= int64(len(p))
	}
	drop := b.closed
	if !drop {
		b.buf = append(b.buf, p...)
	}
	if end && !b.done {
		b.done, b.err = true, io.EOF
	}
	b.cond.Broadcast()
	b.mu.Unlock()
	if drop {
		b.st.c.returnWindow(nil, int32(len(p)))
	}
	return 0
}

func (b *body) finish(err error) {
	b.mu.Lock()
	if !b.done {
		b.done = true
		b.err = err
		if err == nil {
			b.err = io.EOF
		}
	} else if err != nil && b.err == io.EOF && len(b.buf) > 0 {
		b.err = err
	}
	b.cond.Broadcast()
	b.mu.Unlock()
}

func (b *body) isDone() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	for len(b.buf) == 0 && !b.done && !b.closed {
		b.cond.Wait()
	}
	if b.closed {
		b.mu.Unlock()
		return 0, http.ErrBodyReadAfterClose
	}
	if len(b.buf) == 0 {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	if len(b.buf) == 0 {
		b.buf = b.buf[:0:0]
	}
	b.mu.Unlock()
	b.st.c.returnWindow(b.st, int32(n))
	return n, nil
}

// Close drops what is buffered and what is still to come.
func (b *body) Close() error {
	b.release()
	return nil
}

// release gives unread bytes back to the connection window.
func (b *body) release() {
	b.mu.Lock()
	n := len(b.buf)
	b.buf = nil
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
	b.st.c.returnWindow(nil, int32(n))
}
