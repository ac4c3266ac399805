package dataplane

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/flexgw/flexgw/dataplane/internal/h1"
)

// skipRequestHeaders are never copied from the inbound request: hop-by-hop
// headers (RFC 9110 7.6.1), framing the proxy sets itself, and the
// forwarding headers it rewrites.
var skipRequestHeaders = map[string]bool{
	"Connection":          true,
	"Keep-Alive":          true,
	"Proxy-Connection":    true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
	"Content-Length":      true,
	"Host":                true,
	"Expect":              true,
	"X-Forwarded-For":     true,
	"X-Forwarded-Proto":   true,
	"X-Forwarded-Host":    true,
	"X-Request-Id":        true,
}

// hopByHop are the hop-by-hop request headers (RFC 9110 7.6.1, and the
// legacy Keep-Alive and Proxy-Connection) removed before routing and
// policies, with whatever Connection names. Te is kept when it is exactly
// "trailers", the one value that means something end to end (gRPC).
var hopByHop = [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// stripHopByHop removes the hop-by-hop headers of r before routing and
// any policy sees the request: a header a policy injects can then not be
// stripped by naming it in Connection, and rules and policies never act on
// a header that would not reach the upstream. A WebSocket upgrade
// (GET, Connection: upgrade, Upgrade: websocket) is remembered in
// st.upgrade; any other upgrade (h2c, TLS, ...) is dropped and the request
// served as a plain one, so no tunnel bypasses routing and policies.
func (st *reqState) stripHopByHop(r *http.Request) {
	h := r.Header
	if conn := h["Connection"]; len(conn) > 0 {
		if r.ProtoMajor == 1 && r.ProtoMinor == 1 && r.Method == http.MethodGet &&
			h1.HasToken(conn, "upgrade") && h1.HasToken(h["Upgrade"], "websocket") {
			st.upgrade = true
		}
		for _, v := range conn {
			for v != "" {
				var f string
				if i := strings.IndexByte(v, ','); i >= 0 {
					f, v = v[:i], v[i+1:]
				} else {
					f, v = v, ""
				}
				f = h1.TrimSpace(f)
				if f == "" || h1.EqualFold(f, "close") || h1.EqualFold(f, "keep-alive") || h1.EqualFold(f, "upgrade") {
					continue
				}
				delete(h, textproto.CanonicalMIMEHeaderKey(f))
			}
		}
	}
	for _, k := range hopByHop {
		if v, ok := h[k]; ok {
			if k == "Te" && len(v) == 1 && h1.EqualFold(v[0], "trailers") {
				continue
			}
			delete(h, k)
		}
	}
}

// clientIP is the host part of RemoteAddr, without allocating.
func clientIP(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// forwardedFor appends the client address to any X-Forwarded-For the
// client sent ("a, b, client").
func forwardedFor(r *http.Request) string {
	ip := clientIP(r.RemoteAddr)
	prior := r.Header["X-Forwarded-For"]
	if len(prior) == 0 {
		return ip
	}
	n := len(ip)
	for _, p := range prior {
		n += len(p) + 2
	}
	b := make([]byte, 0, n)
	for _, p := range prior {
		b = append(b, p...)
		b = append(b, ", "...)
	}
	b = append(b, ip...)
	return string(b)
}

// setByHook reports whether a hook set key for the upstream request
// (trace propagation): the hook's value replaces the client's, or the
// upstream would join the client's span instead of the gateway's.
func setByHook(extra []string, key string) bool {
	for i := 0; i+1 < len(extra); i += 2 {
		if h1.EqualFold(extra[i], key) {
			return true
		}
	}
	return false
}

// connectionListed reports whether the Connection header names key
// (which makes key hop-by-hop for this request).
func connectionListed(conn []string, key string) bool {
	return h1.HasToken(conn, key)
}

// writeRequest writes the request head and streams its body to c. The
// head goes straight from r's header map into the connection's buffer; no
// outbound http.Request is built. bodyStarted reports whether any body
// byte was consumed from the client (after which a retry is impossible).
func (dp *DataPlane) writeRequest(st *reqState, c *upConn, ep *endpoint, prefix string, r *http.Request, upgrade bool) (bodyStarted bool, err error) {
	if len(st.dispatch) > 0 {
		st.runDispatch(r, ep, prefix)
	}
	bw := c.bw
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	writeUpstreamPath(bw, st, prefix, r)
	if r.URL.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(requestQuery(r))
	} else if r.URL.ForceQuery {
		bw.WriteByte('?')
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(st.upstreamHost(ep, r))
	bw.WriteString("\r\n")

	connHdr := r.Header["Connection"]
	checkConn := len(connHdr) > 0 && !(len(connHdr) == 1 && (h1.EqualFold(connHdr[0], "keep-alive") || h1.EqualFold(connHdr[0], "close")))
	for k, vv := range r.Header {
		if skipRequestHeaders[k] || (checkConn && connectionListed(connHdr, k)) || setByHook(st.extra, k) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if st.xff == "" {
		st.xff = forwardedFor(r)
	}
	bw.WriteString("X-Forwarded-For: ")
	bw.WriteString(st.xff)
	bw.WriteString("\r\nX-Forwarded-Proto: ")
	bw.WriteString(st.ln.scheme)
	bw.WriteString("\r\nX-Forwarded-Host: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\nX-Request-Id: ")
	bw.WriteString(st.reqID)
	bw.WriteString("\r\n")
	for i := 0; i+1 < len(st.extra); i += 2 {
		bw.WriteString(st.extra[i])
		bw.WriteString(": ")
		bw.WriteString(st.extra[i+1])
		bw.WriteString("\r\n")
	}
	if upgrade {
		bw.WriteString("Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		return false, bw.Flush()
	}

	noBody := r.Body == nil || r.Body == http.NoBody
	switch {
	case noBody && r.ContentLength <= 0:
		if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
			bw.WriteString("Content-Length: 0\r\n")
		}
		bw.WriteString("\r\n")
		return false, bw.Flush()
	case r.ContentLength >= 0:
		bw.WriteString("Content-Length: ")
		var nb [20]byte
		bw.Write(strconv.AppendInt(nb[:0], r.ContentLength, 10))
		bw.WriteString("\r\n\r\n")
		if r.ContentLength == 0 {
			return false, bw.Flush()
		}
		return st.copyBody(bw, r, false)
	default:
		bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		return st.copyBody(bw, r, true)
	}
}

// writeTrailers writes the client's trailer fields that may cross a
// proxy (h1.TrailerAllowed) as an HTTP/1.1 trailer section. The h1
// server has checked its own; those of HTTP/2 clients are checked here
// too, so no CR or LF reaches the upstream's framing.
func writeTrailers(bw *bufio.Writer, tr http.Header) {
	for k, vv := range tr {
		k = http.CanonicalHeaderKey(k)
		if !h1.TrailerAllowed(k) || !h1.ValidFieldName(k) {
			continue
		}
		for _, v := range vv {
			if !h1.ValidFieldValue(v) {
				continue
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
}

// copyBody streams the request body upstream (chunk-encoded when its
// length is unknown, then with the request's trailers). It flushes after
// each short read, so a client that streams its body slowly is relayed
// as it goes.
func (st *reqState) copyBody(bw *bufio.Writer, r *http.Request, chunked bool) (started bool, err error) {
	body := r.Body
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			started = true
			st.bytesIn += int64(n)
			if chunked {
				var hb [18]byte
				h := strconv.AppendInt(hb[:0], int64(n), 16)
				h = append(h, '\r', '\n')
				bw.Write(h)
			}
			if _, err := bw.Write(buf[:n]); err != nil {
				return started, err
			}
			if chunked {
				bw.WriteString("\r\n")
			}
			if n < len(buf) {
				if err := bw.Flush(); err != nil {
					return started, err
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return started, clientBodyError{rerr}
		}
	}
	if chunked {
		bw.WriteString("0\r\n")
		writeTrailers(bw, r.Trailer)
		bw.WriteString("\r\n")
	}
	return started, bw.Flush()
}
