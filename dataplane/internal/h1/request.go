package h1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// This file parses HTTP/1.x requests (RFC 9112, strictly).

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
func (c *Conn) readRequest() (*http.Request, int, error) {
	opts := &c.srv.opts
	limit := opts.MaxHeaderBytes
	c.head = c.head[:0]
	lines, empties := 0, 0
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
				// RFC 9112 2.2: ignore at least one empty line before a
				// request; a stream of them only holds the connection.
				c.head = c.head[:0]
				if empties++; empties > opts.MaxLeadingEmptyLines {
					return nil, http.StatusBadRequest, badRequest("too many empty lines before the request line")
				}
				continue
			}
			break
		}
		lines++
		if lines > opts.MaxHeaders+1 { // +1: the request line
			return nil, http.StatusBadRequest, badRequest(fmt.Sprintf("more than %d header fields", opts.MaxHeaders))
		}
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
		v := TrimSpace(line[colon+1:])
		if !validValue(v) {
			return nil, http.StatusBadRequest, badRequest("invalid header value")
		}
		key := CanonicalKey(line[:colon])
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
	if r.URL.Host != "" {
		// Absolute form: the target's authority wins over Host (RFC 9112
		// 3.2.2), so routing and X-Forwarded-Host agree with the target.
		host = r.URL.Host
	}
	if !validHost(host) {
		return nil, http.StatusBadRequest, badRequest("invalid Host")
	}
	r.Host = host
	// Connection management.
	if minor == 0 {
		r.Close = !HasToken([]string{connHdr}, "keep-alive")
	} else {
		r.Close = connHdr != "" && HasToken([]string{connHdr}, "close")
	}
	// Body framing.
	switch {
	case te != "" && minor == 0:
		// An HTTP/1.0 peer cannot send chunked; a 1.0 hop in front of us
		// would frame this body by Content-Length or close (RFC 9112 6.1).
		return nil, http.StatusBadRequest, badRequest("Transfer-Encoding in an HTTP/1.0 request")
	case te != "":
		if cl != "" {
			return nil, http.StatusBadRequest, badRequest("both Transfer-Encoding and Content-Length")
		}
		if !EqualFold(te, "chunked") {
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
		if !EqualFold(e[0], "100-continue") {
			return nil, http.StatusExpectationFailed, &requestError{http.StatusExpectationFailed, "unsupported Expect " + e[0]}
		}
		c.body.expectContinue = r.Body != http.NoBody && minor == 1
	}
	return r, 0, nil
}

var chunkedTE = []string{"chunked"}

// ValidHost reports whether h is a Host value the server would accept
// (validHost), for front ends that parse requests elsewhere (HTTP/2's
// :authority).
func ValidHost(h string) bool { return validHost(h) }

// validHost checks a Host value against RFC 3986 authority (without
// userinfo): reg-name, IPv4 or [IP-literal], optional :port. Empty is
// valid (HTTP/1.0 without Host).
func validHost(h string) bool {
	if h == "" {
		return true
	}
	hostPart, port := h, ""
	if h[0] == '[' {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return false
		}
		for _, c := range []byte(h[1:end]) {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.') {
				return false
			}
		}
		rest := h[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return false
			}
			port = rest[1:]
		}
		hostPart = ""
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		hostPart, port = h[:i], h[i+1:]
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	for i := 0; i < len(hostPart); i++ {
		c := hostPart[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("-._~!$&'()*+,;=%", c) >= 0) {
			return false
		}
	}
	return true
}

// parseURI fills r.URL. An origin-form target is split without net/url:
// RawPath keeps the path as sent (normalizeRequest works from it), Path is
// its decoded form (allocated only when it holds an escape). Absolute form
// and "*" go through net/url.
func (c *Conn) parseURI(r *http.Request, uri string) error {
	if len(uri) > 0 && uri[0] == '/' {
		u := c.url
		*u = url.URL{}
		raw := uri
		if q := strings.IndexByte(uri, '?'); q >= 0 {
			raw, u.RawQuery = uri[:q], uri[q+1:]
			u.ForceQuery = u.RawQuery == ""
		}
		for i := 0; i < len(raw); i++ {
			if b := raw[i]; b <= ' ' || b >= 0x7f || b == '#' {
				return badRequest("malformed request target")
			}
		}
		u.RawPath = raw
		u.Path = raw
		if strings.IndexByte(raw, '%') >= 0 {
			p, err := url.PathUnescape(raw)
			if err != nil {
				return badRequest("malformed percent-encoding in request target")
			}
			u.Path = p
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

// requestBody is the request body reader: Content-Length or chunked framing
// over the connection's buffer, with Expect: 100-continue answered on the
// first read.
type requestBody struct {
	c              *Conn
	remaining      int64 // for Content-Length bodies
	chunked        bool
	cr             ChunkedReader
	expectContinue bool
	err            error
}

func (b *requestBody) reset(c *Conn, n int64, chunked bool) {
	*b = requestBody{c: c, remaining: n, chunked: chunked}
	if chunked {
		b.cr.Reset(c.br)
		b.cr.SetTrailerLimits(c.srv.opts.MaxHeaders, c.srv.opts.MaxHeaderBytes)
		// The request's Trailer map exists before the body is read, as
		// net/http's does: a handler holding a copy of the request (a
		// policy's WithContext) sees the trailers once the body is done.
		clear(c.trailer)
		declareTrailers(c.trailer, c.hdr["Trailer"])
		c.req.Trailer = c.trailer
	}
}

// declareTrailers adds the relayable names a Trailer header announces to
// tr with no value yet, as net/http does: a client that declares them
// lets an HTTP/2 upstream request announce them too (its trailers must
// be declared before the body).
func declareTrailers(tr http.Header, declared []string) {
	for _, names := range declared {
		for names != "" {
			var k string
			if i := strings.IndexByte(names, ','); i >= 0 {
				k, names = names[:i], names[i+1:]
			} else {
				k, names = names, ""
			}
			k = TrimSpace(k)
			if validToken(k) {
				if k = CanonicalKey(k); TrailerAllowed(k) {
					tr[k] = nil
				}
			}
		}
	}
}

func (b *requestBody) Read(p []byte) (int, error) {
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
		b.armTimeout()
		data, err := b.cr.Peek(len(p))
		if err != nil {
			if err == io.EOF {
				for k, vv := range b.cr.Trailers() {
					b.c.trailer[k] = vv
				}
				for k, vv := range b.c.trailer {
					if vv == nil {
						delete(b.c.trailer, k) // declared, never sent
					}
				}
			}
			b.err = err
			return 0, err
		}
		n := copy(p, data)
		if err := b.cr.Advance(n); err != nil {
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
	b.armTimeout()
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

// armTimeout gives the client BodyTimeout for its next bytes when none
// are buffered: a body that stops half-way fails with 408 instead of
// holding a goroutine and an upstream connection.
func (b *requestBody) armTimeout() {
	if b.c.br.Buffered() == 0 {
		_ = b.c.c.SetReadDeadline(time.Now().Add(b.c.srv.opts.BodyTimeout))
	}
}

// Close implements io.Closer; unread body is drained or the connection
// closed after the response.
func (b *requestBody) Close() error { return nil }

// drain discards what the handler left unread so the connection can carry
// the next request; it gives up (closing the connection) past 256 KiB.
func (b *requestBody) drain() bool {
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

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
