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
	"sync"
	"sync/atomic"
	"time"

	"github.com/flexgw/flexgw/policy"
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
	// The per-request objects are reused from request to request: no
	// handler keeps them past its return (see policy.Middleware).
	req  *http.Request
	url  *url.URL
	hdr  http.Header
	body *h1body
	w    *h1writer
}

// connCtx is the context of every request on one h1server connection:
// no deadline or cancellation (a client that leaves is noticed by the
// proxy's own watch), the local address net/http provides, and the
// current request's state, set by lnHandler for the request's duration,
// so a policy chain needs no per-request context or request copy.
type connCtx struct {
	local net.Addr
	st    *reqState
}

func (*connCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*connCtx) Done() <-chan struct{}       { return nil }
func (*connCtx) Err() error                  { return nil }

func (c *connCtx) Value(k any) any {
	switch k.(type) {
	case stateKey, policy.RecorderKey:
		if c.st != nil {
			return c.st
		}
		return nil
	}
	if k == any(http.LocalAddrContextKey) {
		return c.local
	}
	return nil
}

var h1bufPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 8<<10) }}
var h1wbufPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}

func newH1Conn(s *h1server, c net.Conn) *h1conn {
	hc := &h1conn{srv: s, c: c, remote: c.RemoteAddr().String()}
	hc.base = (&http.Request{}).WithContext(&connCtx{local: c.LocalAddr()})
	hc.br = h1bufPool.Get().(*bufio.Reader)
	hc.br.Reset(c)
	hc.bw = h1wbufPool.Get().(*bufio.Writer)
	hc.bw.Reset(c)
	hc.req = new(http.Request)
	hc.url = new(url.URL)
	hc.hdr = make(http.Header, 16)
	hc.body = new(h1body)
	hc.w = &h1writer{hdr: make(http.Header, 8)}
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
			if c.isH2Preface() {
				handedOff = true
				c.handOffH2()
				return
			}
		}
		if !fromAccept {
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
	gc := dp.h2Guard(pc, name)
	if !c.srv.handoff.put(gc) {
		gc.Close()
	}
}

// writeRawError answers a request that could not be parsed and closes.
func (c *h1conn) writeRawError(status int, err error) {
	msg := http.StatusText(status)
	body := msg + ": " + err.Error() + "\n"
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", status, msg, len(body), body)
	_ = c.bw.Flush()
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
