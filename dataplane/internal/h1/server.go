package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Server. Zero values take the defaults noted.
type Options struct {
	// Handler serves every request.
	Handler http.Handler
	// MaxHeaderBytes caps a request head; larger ones get 431. Default 64 KiB.
	MaxHeaderBytes int
	// MaxHeaders caps the header fields of a request head (400 beyond,
	// like Envoy's max_headers_count). Default 100.
	MaxHeaders int
	// MaxLeadingEmptyLines is how many empty lines may precede a request
	// line (RFC 9112 2.2 asks to ignore at least one); more get 400.
	// Default 8.
	MaxLeadingEmptyLines int
	// ReadHeaderTimeout bounds a request head: from accept for the first
	// request (a silent connection is closed then), from its first byte
	// for later ones; 408. Default 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long. Default 120s.
	IdleTimeout time.Duration
	// BodyTimeout is how long a request body may stay silent between two
	// reads before the read fails (the handler answers 408). Default 60s.
	BodyTimeout time.Duration
	// ConnContext returns the context of every request on c (net/http's
	// Server.ConnContext); nil: one carrying http.LocalAddrContextKey.
	ConnContext func(c net.Conn) context.Context
	// H2 takes a connection that opened with the HTTP/2 client preface
	// (h2c prior knowledge), replaying what was read of it; nil closes
	// such connections.
	H2 func(c net.Conn)
	// TLS, when set, terminates TLS on every connection first (the
	// handshake runs on the connection's goroutine and is due within
	// ReadHeaderTimeout of accept). Requests carry the connection state in
	// r.TLS. A connection that negotiated "h2" by ALPN goes to H2 as the
	// bare *tls.Conn, which net/http's TLSNextProto path needs.
	TLS *tls.Config
	// OnConn is told of every connection accepted (+1) and closed (-1);
	// an h2c one handed to H2 counts as closed when it is closed, a TLS
	// one when it is handed over (its new server counts it from there).
	OnConn func(delta int)
	// Logger receives panics of the handler; nil uses slog.Default.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	if o.MaxHeaders <= 0 {
		o.MaxHeaders = 100
	}
	if o.MaxLeadingEmptyLines <= 0 {
		o.MaxLeadingEmptyLines = 8
	}
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = 10 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 120 * time.Second
	}
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = 60 * time.Second
	}
	if o.OnConn == nil {
		o.OnConn = func(int) {}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Server serves HTTP/1.x connections: the request head is parsed into a
// per-connection http.Request that is reused from request to request, and
// the response is framed straight into the connection's buffer. net/http's
// server spends a goroutine, a read syscall, a context and a dozen
// allocations per request on top of that; for a proxy forwarding small
// requests that was a third of the CPU. Connections that open with the
// HTTP/2 preface go to Options.H2.
type Server struct {
	opts Options

	mu       sync.Mutex
	conns    map[*Conn]struct{}
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

// NewServer returns a server that serves nothing until Serve.
func NewServer(opts Options) *Server {
	opts.defaults()
	return &Server{opts: opts, conns: map[*Conn]struct{}{}}
}

// Serve accepts connections until the listener is closed.
func (s *Server) Serve(ln net.Listener) error {
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
		if s.opts.TLS != nil {
			// No handshake yet: that runs on the connection's goroutine.
			c = tls.Server(c, s.opts.TLS)
		}
		hc := newConn(s, c)
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
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.active.Wait(); close(done) }()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		s.closeIdle()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (s *Server) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosing) {
			c.c.Close()
		}
	}
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
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
	return nil
}

func (s *Server) forget(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.active.Done()
}

// Conn is one client connection of a Server.
type Conn struct {
	srv    *Server
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	state  atomic.Int32
	remote string

	head []byte // raw request head, reused
	// base carries the connection's context (http.LocalAddrContextKey, as
	// net/http provides); requests start as a copy of it.
	base *http.Request
	// The per-request objects are reused from request to request: no
	// handler keeps them past its return (see policy.Middleware).
	req *http.Request
	url *url.URL
	hdr http.Header
	// trailer is the Trailer map of chunked requests, filled at the end
	// of their body.
	trailer http.Header
	body    *requestBody
	w       *responseWriter
}

var h1bufPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 8<<10) }}
var h1wbufPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}

func newConn(s *Server, c net.Conn) *Conn {
	hc := &Conn{srv: s, c: c, remote: c.RemoteAddr().String()}
	var ctx context.Context
	if s.opts.ConnContext != nil {
		ctx = s.opts.ConnContext(c)
	} else {
		ctx = context.WithValue(context.Background(), http.LocalAddrContextKey, c.LocalAddr())
	}
	hc.base = (&http.Request{}).WithContext(ctx)
	hc.br = h1bufPool.Get().(*bufio.Reader)
	hc.br.Reset(c)
	hc.bw = h1wbufPool.Get().(*bufio.Writer)
	hc.bw.Reset(c)
	hc.req = new(http.Request)
	hc.url = new(url.URL)
	hc.hdr = make(http.Header, 16)
	hc.trailer = http.Header{}
	hc.body = new(requestBody)
	hc.w = &responseWriter{hdr: make(http.Header, 8)}
	return hc
}

func (c *Conn) serve() {
	opts := &c.srv.opts
	opts.OnConn(1)
	hijacked, handedOff := false, false
	defer func() {
		if p := recover(); p != nil && p != http.ErrAbortHandler {
			opts.Logger.Error("panic serving request", "remote", c.remote, "panic", fmt.Sprint(p))
		}
		if !hijacked && !handedOff {
			c.c.Close()
			opts.OnConn(-1)
			c.br.Reset(nil)
			h1bufPool.Put(c.br)
			c.bw.Reset(nil)
			h1wbufPool.Put(c.bw)
		}
		c.srv.forget(c)
	}()
	if tc, ok := c.c.(*tls.Conn); ok {
		if !c.handshake(tc) {
			return
		}
		if c.base.TLS.NegotiatedProtocol == "h2" {
			handedOff = true
			opts.OnConn(-1)
			_ = tc.SetReadDeadline(time.Time{})
			c.br.Reset(nil) // nothing was read through them
			h1bufPool.Put(c.br)
			c.bw.Reset(nil)
			h1wbufPool.Put(c.bw)
			if opts.H2 == nil {
				tc.Close()
				return
			}
			opts.H2(tc)
			return
		}
	}
	first := true
	fromAccept := true // the head deadline set at accept still runs
	for {
		// Wait for the next request (idle), then give the head its own
		// deadline once it starts (slow clients are cut off).
		if c.br.Buffered() == 0 {
			// The first request's head is due ReadHeaderTimeout after
			// accept: a silent connection or a partial h2 preface is not
			// held for the idle timeout.
			wait := opts.IdleTimeout
			if first {
				wait = opts.ReadHeaderTimeout
			}
			_ = c.c.SetReadDeadline(time.Now().Add(wait))
			if _, err := c.br.Peek(1); err != nil {
				return
			}
		}
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			return // shutting down
		}
		if first {
			first = false
			// Over TLS, HTTP/2 is chosen by ALPN only (as net/http
			// does): there a preface is a malformed request.
			if c.base.TLS == nil && c.isH2Preface() {
				handedOff = true
				c.handOffH2()
				return
			}
		}
		if !fromAccept && !c.headBuffered() {
			_ = c.c.SetReadDeadline(time.Now().Add(opts.ReadHeaderTimeout))
		}
		fromAccept = false
		r, status, err := c.readRequest()
		if err != nil {
			if status != 0 {
				c.writeRawError(status, err)
			}
			return
		}
		if r.Body != http.NoBody {
			// A body read sets its own deadline (BodyTimeout) whenever it
			// has to wait for the client; a bodiless request keeps the
			// head deadline until the next wait replaces it, saving a
			// timer update.
			_ = c.c.SetReadDeadline(time.Time{})
		}
		w := c.w
		w.reset(c, r)
		opts.Handler.ServeHTTP(w, r)
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
		c.state.Store(stateIdle)
		if c.srv.shutdown.Load() {
			return
		}
	}
}

// handshake runs the TLS handshake, due ReadHeaderTimeout after accept,
// and records the connection state every request of c carries.
func (c *Conn) handshake(tc *tls.Conn) bool {
	_ = tc.SetDeadline(time.Now().Add(c.srv.opts.ReadHeaderTimeout))
	if err := tc.Handshake(); err != nil {
		c.srv.opts.Logger.Debug("TLS handshake failed", "remote", c.remote, "error", err)
		return false
	}
	_ = tc.SetWriteDeadline(time.Time{})
	cs := tc.ConnectionState()
	base := *c.base // a struct copy keeps the unexported context
	base.TLS = &cs
	c.base = &base
	return true
}

// isH2Preface reports whether the connection starts with the HTTP/2
// client preface. It blocks for more bytes only while what arrived is a
// prefix of the preface, so a short HTTP/1 request is not held up.
func (c *Conn) isH2Preface() bool {
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
func (c *Conn) handOffH2() {
	buffered, _ := c.br.Peek(c.br.Buffered())
	pre := append([]byte(nil), buffered...)
	_ = c.c.SetReadDeadline(time.Time{})
	pc := &prefixConn{Conn: c.c, r: io.MultiReader(bytes.NewReader(pre), c.c)}
	opts := &c.srv.opts
	pc.onClose = func() { opts.OnConn(-1) }
	if opts.H2 == nil {
		pc.Close()
		return
	}
	opts.H2(pc)
}

// writeRawError answers a request that could not be parsed and closes.
func (c *Conn) writeRawError(status int, err error) {
	msg := http.StatusText(status)
	body := msg + ": " + err.Error() + "\n"
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", status, msg, len(body), body)
	_ = c.bw.Flush()
}

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
	_ http.ResponseWriter = (*responseWriter)(nil)
	_ http.Flusher        = (*responseWriter)(nil)
	_ http.Hijacker       = (*responseWriter)(nil)
)

// ClientOf returns the connection a ResponseWriter of this package writes
// to (through wrappers that implement Unwrap, as policies' do), or nil.
func ClientOf(w http.ResponseWriter) *Conn {
	for i := 0; i < 16; i++ {
		switch x := w.(type) {
		case *responseWriter:
			return x.c
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return nil
		}
	}
	return nil
}

// Watch watches the connection for the client going away (EOF, reset)
// while the handler waits for something else, such as an upstream that
// is slow to answer; onGone runs (on the watcher's goroutine) when it
// does. stop ends the watch, reports whether the client left, and leaves
// the connection as it was (a request the client pipelined meanwhile
// stays buffered). Nothing may read the connection between Watch and
// stop.
func (c *Conn) Watch(onGone func()) (stop func() (gone bool)) {
	var left atomic.Bool
	stopped := make(chan struct{})
	_ = c.c.SetReadDeadline(time.Time{}) // the head deadline may still be armed
	go func() {
		defer close(stopped)
		if _, err := c.br.Peek(1); err != nil && !isTimeout(err) {
			left.Store(true)
			onGone()
		}
	}()
	return func() bool {
		_ = c.c.SetReadDeadline(aLongTimeAgo)
		<-stopped
		_ = c.c.SetReadDeadline(time.Time{})
		return left.Load()
	}
}

// headBuffered reports whether a whole request head is already in the
// read buffer, so reading it cannot wait on the client and the head
// deadline (a timer update per request) is not needed. It asks for the
// head to start at the buffer's first byte: leading empty lines hold an
// end-of-head marker of their own, and a head behind them still gets its
// deadline.
func (c *Conn) headBuffered() bool {
	b, _ := c.br.Peek(c.br.Buffered())
	return len(b) > 0 && b[0] != '\r' && b[0] != '\n' && bytes.Contains(b, crlfcrlf)
}

var crlfcrlf = []byte("\r\n\r\n")

// aLongTimeAgo is a deadline in the past: setting it unblocks I/O at once.
var aLongTimeAgo = time.Unix(1, 0)
