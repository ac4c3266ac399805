// Package h2guard closes HTTP/2 connections that reset too many streams.
//
// A client can open a stream and reset it at once, over and over (rapid
// reset, CVE-2023-44487), or make the server reset streams for it by
// sending frames that are stream errors (MadeYouReset, CVE-2025-8671:
// WINDOW_UPDATE of 0, DATA past the window, frames on closed streams).
// Either way every stream costs the server a request it never finishes,
// and the client pays nothing. Go's HTTP/2 server bounds the concurrent
// work, but keeps serving a connection that does this forever.
//
// Conn sits between the socket (after TLS) and the HTTP/2 server. It reads
// only frame headers in both directions, as they pass: client RST_STREAM
// frames, and server RST_STREAM frames with an error code a client can
// provoke (everything but NO_ERROR, INTERNAL_ERROR and CANCEL, which the
// server sends for its own reasons), are counted against the streams the
// client opened. When more than MaxResets resets happen within Window and
// they are more than half the streams opened in it, the connection is
// answered with GOAWAY (ENHANCE_YOUR_CALM) and closed. The ratio is
// Envoy's premature-reset rule (a connection is closed when over half of
// its streams were reset early); the window keeps one long-lived
// connection that cancels now and then from ever tripping.
//
// A client that reconnects after a trip would start over with a fresh
// budget. Penalty closes that door: for a while after one of its
// connections tripped, a new connection from the same address is closed
// before the HTTP/2 server reads a frame of it.
package h2guard

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Options bound the resets of one connection. Zero values take the
// defaults noted.
type Options struct {
	// MaxResets is how many counted resets a Window tolerates. Default 200.
	MaxResets int
	// Window is the period resets and streams are counted over. Default 10s.
	Window time.Duration
	// OnTrip is called once when a connection is closed for resets.
	OnTrip func(resets, streams int)
	// Penalty, when set, records Client when this connection trips, and
	// refuses the connection at once if Client is penalised already.
	Penalty *Penalty
	// Client is the connection's peer address (Penalty's key).
	Client netip.Addr
}

func (o *Options) defaults() {
	if o.MaxResets <= 0 {
		o.MaxResets = 200
	}
	if o.Window <= 0 {
		o.Window = 10 * time.Second
	}
}

// ErrTooManyResets is what reads return once a connection was closed for
// resetting too many streams.
var ErrTooManyResets = errors.New("h2guard: too many stream resets")

// Frame types and error codes of RFC 9113.
const (
	frameHeaders   = 0x1
	frameRSTStream = 0x3
	frameGoAway    = 0x7

	errNoError         = 0x0
	errInternal        = 0x2
	errCancel          = 0x8
	errEnhanceYourCalm = 0xb
)

var clientPreface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// Conn is a net.Conn carrying HTTP/2 that counts stream resets.
type Conn struct {
	net.Conn
	opts Options

	in  parser // client → server, starts with the preface
	out parser // server → client

	mu          sync.Mutex // counters, tripped, writes
	windowStart time.Time
	resets      int
	streams     int
	maxStream   uint32
	tripped     bool
}

// New wraps c, whose next bytes are the client's preface. A TLS
// connection (one with ConnectionState) comes back as a *TLSConn, so the
// HTTP/2 server still fills Request.TLS; any other as a *Conn (an HTTP/2
// server takes a connection with a ConnectionState method for TLS).
func New(c net.Conn, opts Options) net.Conn {
	opts.defaults()
	g := &Conn{Conn: c, opts: opts}
	g.in.preface = len(clientPreface)
	g.in.onFrame = g.clientFrame
	g.out.onFrame = g.serverFrame
	if opts.Penalty != nil && opts.Penalty.Blocked(opts.Client) {
		// Tripped from the start: the server's first read fails and it
		// tears the connection down without serving a stream.
		g.tripped = true
		_ = c.Close()
	}
	if tc, ok := c.(connectionStater); ok {
		return &TLSConn{Conn: g, tc: tc}
	}
	return g
}

// Penalty remembers the client addresses whose connections tripped a
// guard, each for a duration from its last trip. Clients behind one NAT
// address share it: the price of keying by address, as nginx's
// limit_conn does. The table is bounded (maxPenalized addresses); when it
// is full of live entries a new trip is not remembered, so memory stays
// bounded under an attack from many addresses.
type Penalty struct {
	d     time.Duration
	mu    sync.Mutex
	until map[netip.Addr]time.Time
}

// maxPenalized bounds a Penalty's table.
const maxPenalized = 1 << 16

// NewPenalty returns a Penalty that refuses an address for d after its
// last trip.
func NewPenalty(d time.Duration) *Penalty {
	return &Penalty{d: d, until: make(map[netip.Addr]time.Time)}
}

// Blocked reports whether a is penalised now.
func (p *Penalty) Blocked(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	u, ok := p.until[a]
	if !ok {
		return false
	}
	if time.Now().After(u) {
		delete(p.until, a)
		return false
	}
	return true
}

// add penalises a from now.
func (p *Penalty) add(a netip.Addr) {
	if !a.IsValid() {
		return
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.until[a]; !ok && len(p.until) >= maxPenalized {
		for k, u := range p.until {
			if now.After(u) {
				delete(p.until, k)
			}
		}
		if len(p.until) >= maxPenalized {
			return
		}
	}
	p.until[a] = now.Add(p.d)
}

type connectionStater interface {
	ConnectionState() tls.ConnectionState
}

// TLSConn is a Conn over TLS.
type TLSConn struct {
	*Conn
	tc connectionStater
}

// ConnectionState is the wrapped connection's TLS state.
func (t *TLSConn) ConnectionState() tls.ConnectionState { return t.tc.ConnectionState() }

// NetConn returns the wrapped connection.
func (g *Conn) NetConn() net.Conn { return g.Conn }

func (g *Conn) Read(b []byte) (int, error) {
	n, err := g.Conn.Read(b)
	if n > 0 {
		g.in.feed(b[:n])
	}
	g.mu.Lock()
	tripped := g.tripped
	g.mu.Unlock()
	if tripped {
		return 0, ErrTooManyResets
	}
	return n, err
}

func (g *Conn) Write(b []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.tripped {
		return 0, ErrTooManyResets
	}
	n, err := g.Conn.Write(b)
	if n > 0 {
		// Called with mu held: serverFrame counts under it.
		g.out.feed(b[:n])
	}
	return n, err
}

// clientFrame sees each client frame header (the read side's goroutine).
func (g *Conn) clientFrame(typ, _ byte, stream uint32, _ []byte) {
	switch typ {
	case frameHeaders:
		g.mu.Lock()
		if stream > g.maxStream {
			g.maxStream = stream
			g.roll()
			g.streams++
		}
		g.mu.Unlock()
	case frameRSTStream:
		g.mu.Lock()
		g.count()
		g.mu.Unlock()
	}
}

// serverFrame sees each server frame header; mu is held (Write).
func (g *Conn) serverFrame(typ, _ byte, _ uint32, payload []byte) {
	if typ != frameRSTStream || len(payload) < 4 {
		return
	}
	switch binary.BigEndian.Uint32(payload) {
	case errNoError, errInternal, errCancel:
		return
	}
	g.count()
}

// roll starts a new window when the current one is over; mu is held.
func (g *Conn) roll() {
	now := time.Now()
	if now.Sub(g.windowStart) > g.opts.Window {
		g.windowStart, g.resets, g.streams = now, 0, 0
	}
}

// count adds a reset and trips the guard when over the limit; mu is held.
func (g *Conn) count() {
	if g.tripped {
		return
	}
	g.roll()
	g.resets++
	if g.resets <= g.opts.MaxResets || g.resets*2 <= g.streams {
		return
	}
	g.tripped = true
	// GOAWAY only between two of the server's frames; inside one the
	// connection is just closed.
	if g.out.atBoundary() {
		var f [17]byte
		binary.BigEndian.PutUint32(f[0:4], 8<<8) // length 8, then the type byte
		f[3] = frameGoAway
		binary.BigEndian.PutUint32(f[9:13], g.maxStream&0x7fffffff)
		binary.BigEndian.PutUint32(f[13:17], errEnhanceYourCalm)
		_ = g.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = g.Conn.Write(f[:])
	}
	if g.opts.Penalty != nil {
		g.opts.Penalty.add(g.opts.Client)
	}
	if g.opts.OnTrip != nil {
		g.opts.OnTrip(g.resets, g.streams)
	}
	// Close the socket (not the HTTP/2 server's view of it): its reads
	// and writes fail, and it tears the connection down.
	if tc, ok := g.Conn.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	_ = g.Conn.Close()
}

// parser follows frame boundaries in a byte stream, handing each frame's
// header (and the first bytes of an RST_STREAM payload) to onFrame.
type parser struct {
	preface int // preface bytes still to skip
	hdr     [13]byte
	have    int // bytes of hdr collected
	need    int // header bytes wanted: 9, or 13 for RST_STREAM
	skip    int // payload bytes left to pass over
	onFrame func(typ, flags byte, stream uint32, payload []byte)
}

// atBoundary reports whether the stream is between two frames.
func (p *parser) atBoundary() bool { return p.have == 0 && p.skip == 0 && p.preface == 0 }

func (p *parser) feed(b []byte) {
	for len(b) > 0 {
		if p.preface > 0 {
			k := min(p.preface, len(b))
			p.preface -= k
			b = b[k:]
			continue
		}
		if p.skip > 0 {
			k := min(p.skip, len(b))
			p.skip -= k
			b = b[k:]
			continue
		}
		if p.need == 0 {
			p.need = 9
		}
		k := min(p.need-p.have, len(b))
		copy(p.hdr[p.have:], b[:k])
		p.have += k
		b = b[k:]
		if p.have < p.need {
			return
		}
		length := int(p.hdr[0])<<16 | int(p.hdr[1])<<8 | int(p.hdr[2])
		typ := p.hdr[3]
		if p.need == 9 && typ == frameRSTStream && length >= 4 {
			p.need = 13 // read the error code too
			continue
		}
		stream := binary.BigEndian.Uint32(p.hdr[5:9]) & 0x7fffffff
		p.onFrame(typ, p.hdr[4], stream, p.hdr[9:p.have])
		p.skip = length - (p.have - 9)
		p.have, p.need = 0, 0
	}
}
