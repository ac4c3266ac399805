package dataplane

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/flexgw/flexgw/dataplane/internal/h1"
)

// h1Listener serves a listener: HTTP/1.x on the h1 server (over TLS
// when tc is set), HTTP/2 connections handed to a net/http server through
// a connQueue: h2c prior-knowledge ones behind the reset guard, TLS ones
// that chose h2 by ALPN as the bare *tls.Conn net/http's TLSNextProto
// takes (which puts the guard in front of its HTTP/2 server).
type h1Listener struct {
	h1      *h1.Server
	h2      *http.Server
	handoff *connQueue
}

func newH1Listener(dp *DataPlane, h *lnHandler, h2 *http.Server, tc *tls.Config) *h1Listener {
	l := &h1Listener{h2: h2, handoff: newConnQueue()}
	o := &dp.opts
	l.h1 = h1.NewServer(h1.Options{
		TLS:               tc,
		Handler:           h,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		MaxHeaders:        o.MaxHeaders,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		IdleTimeout:       o.IdleTimeout,
		BodyTimeout:       o.BodyTimeout,
		ConnContext:       func(c net.Conn) context.Context { return &connCtx{local: c.LocalAddr()} },
		H2: func(c net.Conn) {
			if tc == nil {
				c = dp.h2Guard(c, h.name)
			}
			if !l.handoff.put(c) {
				c.Close()
			}
		},
		OnConn: func(d int) {
			if dp.hooks.Conn != nil {
				dp.hooks.Conn(h.name, d)
			}
		},
		Logger: dp.log.With("listener", h.name),
	})
	go func() { _ = h2.Serve(l.handoff) }()
	return l
}

func (l *h1Listener) Serve(ln net.Listener) error { return l.h1.Serve(ln) }

func (l *h1Listener) Shutdown(ctx context.Context) error {
	h2err := make(chan error, 1)
	go func() { h2err <- l.h2.Shutdown(ctx) }()
	err := l.h1.Shutdown(ctx)
	if err2 := <-h2err; err == nil {
		err = err2
	}
	return err
}

func (l *h1Listener) Close() error {
	l.h1.Close()
	return l.h2.Close()
}

// connCtx is the context of every request on one h1 connection: no
// deadline or cancellation (a client that leaves is noticed by the
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
	if c.st != nil {
		if v := c.st.value(k); v != nil {
			return v
		}
	}
	if k == any(http.LocalAddrContextKey) {
		return c.local
	}
	return nil
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
