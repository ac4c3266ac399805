package dataplane

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/flexgw/flexgw/dataplane/internal/h1"
	"github.com/flexgw/flexgw/dataplane/internal/h2"
)

// h1Listener serves a listener: HTTP/1.x on the h1 server (over TLS
// when tc is set), HTTP/2 on the h2 server (internal/h2) behind the reset
// guard: h2c prior-knowledge connections the h1 server recognised by
// their preface, TLS ones that chose h2 by ALPN.
type h1Listener struct {
	h1 *h1.Server
	h2 *h2.Server
}

func newH1Listener(dp *DataPlane, h *lnHandler, tc *tls.Config) *h1Listener {
	o := &dp.opts
	l := &h1Listener{h2: h2.NewServer(h2.Options{
		Handler:        h,
		MaxHeaderBytes: o.MaxHeaderBytes,
		IdleTimeout:    o.IdleTimeout,
		PrefaceTimeout: o.ReadHeaderTimeout,
		Logger:         dp.log.With("listener", h.name),
	})}
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
			tcon, isTLS := c.(*tls.Conn)
			var ts *tls.ConnectionState
			if isTLS {
				s := tcon.ConnectionState()
				ts = &s
				// The h1 server stopped counting it at the hand-off
				// (an h2c one it counts until it is closed).
				if dp.hooks.Conn != nil {
					dp.hooks.Conn(h.name, 1)
				}
			}
			go func() {
				l.h2.ServeConn(dp.h2Guard(c, h.name), ts)
				if isTLS && dp.hooks.Conn != nil {
					dp.hooks.Conn(h.name, -1)
				}
			}()
		},
		OnConn: func(d int) {
			if dp.hooks.Conn != nil {
				dp.hooks.Conn(h.name, d)
			}
		},
		Logger: dp.log.With("listener", h.name),
	})
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
