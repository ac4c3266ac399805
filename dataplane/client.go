package dataplane

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
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
	// maxResponseHead bounds upstream response headers.
	maxResponseHead = 64 << 10
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

func newUpConn(c net.Conn) *upConn {
	return &upConn{
		conn: c,
		br:   bufio.NewReaderSize(c, upReadBufSize),
		bw:   bufio.NewWriterSize(c, upWriteBufSize),
	}
}

var errResponseHead = errors.New("malformed upstream response")

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

// upResponse is a parsed upstream response head.
type upResponse struct {
	status int
	// contentLength is -1 when absent.
	contentLength int64
	chunked       bool
	close         bool // upstream said Connection: close (or HTTP/1.0)
	upgrade       bool // 101 with Upgrade
	// header holds the end-to-end headers to relay.
	header http.Header
}

// hopHeaders are connection-level headers never relayed (RFC 9110 7.6.1).
var hopHeaders = map[string]bool{
	"Connection":          true,
	"Keep-Alive":          true,
	"Proxy-Connection":    true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
}

// commonHeaders interns canonical names of frequent response headers so
// parsing them does not allocate.
var commonHeaders = func() map[string]string {
	m := map[string]string{}
	for _, h := range []string{
		"Accept-Ranges", "Access-Control-Allow-Origin", "Age", "Cache-Control",
		"Connection", "Content-Encoding", "Content-Language", "Content-Length",
		"Content-Type", "Date", "Etag", "Expires", "Keep-Alive", "Last-Modified",
		"Location", "Server", "Set-Cookie", "Transfer-Encoding", "Vary",
		"Via", "X-Request-Id", "Upgrade", "Sec-Websocket-Accept",
		"Sec-Websocket-Protocol", "Sec-Websocket-Extensions", "Strict-Transport-Security",
		"X-Content-Type-Options", "X-Frame-Options", "Www-Authenticate", "Retry-After",
		"Trailer", "Proxy-Connection", "Te",
	} {
		m[h] = h
		m[lower(h)] = h
	}
	return m
}()

func lower(s string) string { return string(bytes.ToLower([]byte(s))) }

// readResponseHead reads the status line and headers into res; 1xx
// informational responses other than 101 are skipped.
func (c *upConn) readResponseHead(res *upResponse, h http.Header) error {
	for {
		if err := c.readHead(res, h); err != nil {
			return err
		}
		if res.status >= 200 || res.status == http.StatusSwitchingProtocols {
			return nil
		}
		clear(h)
	}
}

func (c *upConn) readHead(res *upResponse, h http.Header) error {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return fmt.Errorf("%w: status line %q", errResponseHead, truncate(line))
	}
	minor := line[7]
	st := line[9:12]
	if st[0] < '1' || st[0] > '5' || st[1] < '0' || st[1] > '9' || st[2] < '0' || st[2] > '9' {
		return fmt.Errorf("%w: status %q", errResponseHead, truncate(line))
	}
	*res = upResponse{
		status:        int(st[0]-'0')*100 + int(st[1]-'0')*10 + int(st[2]-'0'),
		contentLength: -1,
		close:         minor == '0',
		header:        h,
	}
	// Collect the header block, then convert it to one string so every
	// key and value is a substring of a single allocation.
	c.head = c.head[:0]
	nlines := 0
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return fmt.Errorf("%w: header line too long", errResponseHead)
			}
			return err
		}
		if len(line) <= 2 && (len(line) == 1 || line[0] == '\r') {
			break
		}
		c.head = append(c.head, line...)
		nlines++
		if len(c.head) > maxResponseHead {
			return fmt.Errorf("%w: headers over %d bytes", errResponseHead, maxResponseHead)
		}
	}
	if nlines == 0 {
		return nil
	}
	block := string(c.head)
	vals := make([]string, 0, nlines)
	var connHdr string
	for len(block) > 0 {
		line := block
		if i := strings.IndexByte(block, '\n'); i >= 0 {
			line, block = block[:i], block[i+1:]
		} else {
			block = ""
		}
		line = trimCR(line)
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return fmt.Errorf("%w: header line %q", errResponseHead, line)
		}
		key := canonicalString(line[:colon])
		v := trimSpace(line[colon+1:])
		switch key {
		case "Content-Length":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("%w: Content-Length %q", errResponseHead, v)
			}
			res.contentLength = n
		case "Transfer-Encoding":
			if asciiContainsFold(v, "chunked") {
				res.chunked = true
			}
			continue
		case "Connection":
			connHdr = v
			if asciiContainsFold(v, "close") {
				res.close = true
			}
			continue
		case "Upgrade":
			if res.status == http.StatusSwitchingProtocols {
				vals = append(vals, v)
				h[key] = vals[len(vals)-1 : len(vals) : len(vals)]
				res.upgrade = true
			}
			continue
		}
		if hopHeaders[key] {
			continue
		}
		if old, ok := h[key]; ok {
			h[key] = append(old, v)
			continue
		}
		vals = append(vals, v)
		h[key] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	if connHdr != "" {
		removeConnectionHeaders(h, connHdr)
	}
	if res.chunked {
		// Chunked wins over a Content-Length (RFC 9112 6.3); relaying
		// both would let the client frame the body differently.
		res.contentLength = -1
		delete(h, "Content-Length")
	}
	return nil
}

// canonicalString is canonicalKey for a string (no allocation when it is
// already canonical or common).
func canonicalString(s string) string {
	if c, ok := commonHeaders[s]; ok {
		return c
	}
	return textproto.CanonicalMIMEHeaderKey(s)
}

// removeConnectionHeaders drops headers named in a Connection header.
func removeConnectionHeaders(h http.Header, conn string) {
	for conn != "" {
		var f string
		if i := strings.IndexByte(conn, ','); i >= 0 {
			f, conn = conn[:i], conn[i+1:]
		} else {
			f, conn = conn, ""
		}
		f = trimSpace(f)
		if f != "" && !asciiEqualFold(f, "close") && !asciiEqualFold(f, "keep-alive") && !asciiEqualFold(f, "upgrade") {
			delete(h, textproto.CanonicalMIMEHeaderKey(f))
		}
	}
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

func trimCR(s string) string {
	if n := len(s); n > 0 && s[n-1] == '\r' {
		return s[:n-1]
	}
	return s
}

func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerByte(a[i]) != lowerByte(b[i]) {
			return false
		}
	}
	return true
}

func asciiContainsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if asciiEqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

func lowerByte(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// chunkedReader decodes a chunked response body from the connection's
// buffered reader.
type chunkedReader struct {
	br  *bufio.Reader
	n   int64 // bytes left in the current chunk
	err error
	eof bool
}

func (r *chunkedReader) reset(br *bufio.Reader) {
	*r = chunkedReader{br: br}
}

// peek returns up to max bytes of chunk data already buffered (blocking
// for more only when none is), for copying without an extra buffer.
func (r *chunkedReader) peek(max int) ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.eof {
		return nil, io.EOF
	}
	if r.n == 0 {
		if err := r.nextChunk(); err != nil {
			r.err = err
			return nil, err
		}
		if r.eof {
			return nil, io.EOF
		}
	}
	if r.br.Buffered() == 0 {
		if _, err := r.br.Peek(1); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			r.err = err
			return nil, err
		}
	}
	n := min(int64(r.br.Buffered()), r.n, int64(max))
	b, _ := r.br.Peek(int(n))
	return b, nil
}

// advance consumes n bytes returned by peek.
func (r *chunkedReader) advance(n int) error {
	_, _ = r.br.Discard(n)
	r.n -= int64(n)
	if r.n == 0 {
		if err := r.crlf(); err != nil {
			r.err = err
			return err
		}
	}
	return nil
}

// crlf reads the CRLF that must follow chunk data (RFC 9112 7.1): any
// other byte there means the two ends frame the body differently.
func (r *chunkedReader) crlf() error {
	b, err := r.br.Peek(2)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if b[0] != '\r' || b[1] != '\n' {
		return errChunkCRLF
	}
	_, _ = r.br.Discard(2)
	return nil
}

var (
	errChunkCRLF     = errors.New("chunked: missing CRLF after chunk data")
	errChunkSizeLine = errors.New("chunked: malformed chunk size line")
	errChunkTrailers = errors.New("chunked: malformed or too many trailer fields")
)

// maxTrailers bounds the trailer section of a chunked body (fields after
// the last chunk, which the proxy reads and drops).
const maxTrailers = 100

// nextChunk reads a chunk-size line, RFC 9112 7.1:
// 1*HEXDIG *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ) CRLF.
// Anything else ("0x5", "5xyz", a bare LF) is an error: a lenient reader
// frames the body differently from a strict one in front of or behind it.
func (r *chunkedReader) nextChunk() error {
	line, err := r.br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			err = errChunkSizeLine
		}
		return err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return errChunkSizeLine
	}
	line = line[:len(line)-2]
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			goto done
		}
		if i >= 15 {
			return errors.New("chunked: chunk size too large")
		}
		n = n<<4 | int64(d)
	}
done:
	if i == 0 {
		return errChunkSizeLine
	}
	if rest := line[i:]; len(rest) > 0 {
		// Only an extension may follow: optional whitespace, then ';'.
		j := 0
		for j < len(rest) && (rest[j] == ' ' || rest[j] == '\t') {
			j++
		}
		if j == len(rest) || rest[j] != ';' {
			return errChunkSizeLine
		}
		for _, c := range rest[j:] {
			if c < ' ' && c != '\t' || c == 0x7f {
				return errChunkSizeLine
			}
		}
	}
	if n == 0 {
		// Last chunk: trailer fields (read and dropped) up to the empty line.
		for k := 0; ; k++ {
			t, err := r.br.ReadSlice('\n')
			if err != nil {
				if errors.Is(err, bufio.ErrBufferFull) {
					err = errChunkTrailers
				}
				return err
			}
			if len(t) < 2 || t[len(t)-2] != '\r' {
				return errChunkTrailers
			}
			if len(t) == 2 {
				break
			}
			if k == maxTrailers || t[0] == ' ' || t[0] == '\t' || bytes.IndexByte(t, ':') <= 0 {
				return errChunkTrailers
			}
		}
		r.eof = true
		return nil
	}
	r.n = n
	return nil
}

// copyBufPool holds buffers for request bodies (read from net/http, so
// they need a buffer of ours).
var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
