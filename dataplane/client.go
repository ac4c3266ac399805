package dataplane

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/flexgw/flexgw/dataplane/internal/h1"
)

// This file is the upstream HTTP/1.1 client: pooled connections with their
// own buffered reader and writer, the request written straight from the
// inbound request, and the response head parsed with one allocation for all
// header strings. net/http's Transport allocates a Request, a Response and
// a header map per exchange and runs two goroutines per connection; for a
// proxy that only relays bytes that cost is most of its CPU.

const (
	upReadBufSize  = 16 << 10
	upWriteBufSize = 4 << 10
)

// upConn is one upstream connection.
type upConn struct {
	conn      net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	// writeDeadline is set while a write deadline is armed on conn.
	writeDeadline bool
	// head collects raw header lines before they become one string.
	head []byte
}

// readResponseHead parses the response head (h1.ReadResponseHead).
func (c *upConn) readResponseHead(res *h1.Response, h http.Header) error {
	return h1.ReadResponseHead(c.br, &c.head, res, h)
}

func newUpConn(c net.Conn) *upConn {
	return &upConn{
		conn: c,
		br:   bufio.NewReaderSize(c, upReadBufSize),
		bw:   bufio.NewWriterSize(c, upWriteBufSize),
	}
}

// alive reports whether an idle connection is still open, by peeking at
// the socket without blocking: an open idle connection has nothing to
// read (EAGAIN); one the upstream closed reads EOF or an error, and data
// nobody asked for makes the connection unusable too.
func (c *upConn) alive() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	nc := c.conn
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var one [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true // never wait for readiness
	})
	return err == nil && alive
}

// copyBufPool holds buffers for request bodies (read from net/http, so
// they need a buffer of ours).
var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
