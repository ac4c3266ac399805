package h1

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// This file frames HTTP/1.1 responses.

// responseWriter is the http.ResponseWriter of Conn.
type responseWriter struct {
	c           *Conn
	req         *http.Request
	hdr         http.Header
	status      int
	wroteHeader bool // WriteHeader was called (logically)
	headerSent  bool // the head is in the connection's buffer
	chunked     bool
	noBody      bool
	cl          int64 // declared Content-Length, -1 when none
	written     int64
	closeAfter  bool
	hijacked    bool
	// declared is the Trailer header the head announced: the values of
	// those names in the header map at the end are the trailers.
	declared []string
}

func (w *responseWriter) reset(c *Conn, r *http.Request) {
	hdr := w.hdr
	clear(hdr)
	*w = responseWriter{c: c, req: r, hdr: hdr, cl: -1}
}

func (w *responseWriter) Header() http.Header { return w.hdr }

// SetReadDeadline lets a policy cut a request body read short through
// http.ResponseController (stream-idle-timeout-flex, from a timer
// goroutine: it only touches the conn, whose deadlines are safe to set
// concurrently). A body left unread closes the connection after the
// response; otherwise the server sets its own deadline before the next
// read of a kept-alive one.
func (w *responseWriter) SetReadDeadline(t time.Time) error {
	return w.c.c.SetReadDeadline(t)
}

func (w *responseWriter) WriteHeader(code int) {
	if w.hijacked || w.wroteHeader {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// Interim response (103 Early Hints): sent at once.
		writeStatusLine(w.c.bw, code)
		writeHeaders(w.c.bw, w.hdr)
		w.c.bw.WriteString("\r\n")
		_ = w.c.bw.Flush()
		return
	}
	w.wroteHeader = true
	w.status = code
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerSent {
		w.sendHeader(false)
	}
	if w.noBody {
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	bw := w.c.bw
	if w.chunked {
		if len(p) == 0 {
			return 0, nil
		}
		var hb [18]byte
		bw.Write(append(strconv.AppendInt(hb[:0], int64(len(p)), 16), '\r', '\n'))
	}
	n, err := bw.Write(p)
	w.written += int64(n)
	if err == nil && w.chunked {
		_, err = bw.WriteString("\r\n")
	}
	return n, err
}

// Flush sends what is buffered to the client.
func (w *responseWriter) Flush() {
	if w.hijacked {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerSent {
		w.sendHeader(false)
	}
	_ = w.c.bw.Flush()
}

// Hijack hands the connection to the caller (WebSocket tunnels).
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.headerSent {
		return nil, nil, errors.New("hijack after the response head was sent")
	}
	w.hijacked = true
	c := w.c
	_ = c.c.SetDeadline(time.Time{})
	return c.c, bufio.NewReadWriter(c.br, c.bw), nil
}

// sendHeader writes the status line and headers; final is set when the
// handler has returned, so a body-less response gets Content-Length: 0.
func (w *responseWriter) sendHeader(final bool) {
	w.headerSent = true
	h := w.hdr
	code := w.status
	r := w.req
	w.noBody = r.Method == http.MethodHead || code == 204 || code == 304 || (code >= 100 && code < 200)
	if v := h["Content-Length"]; len(v) > 0 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			w.cl = n
		} else {
			delete(h, "Content-Length")
		}
	}
	delete(h, "Transfer-Encoding")
	w.declared = h["Trailer"]
	switch {
	case w.noBody:
		if code == 204 || code == 304 || code < 200 {
			delete(h, "Content-Length")
		}
	case w.cl >= 0:
	case final:
		w.cl = w.written
		h["Content-Length"] = zeroLength
	case r.ProtoMinor >= 1:
		w.chunked = true
	default:
		w.closeAfter = true // HTTP/1.0 without a length: close-delimited
	}
	if r.Close || w.c.srv.shutdown.Load() {
		w.closeAfter = true
	}
	bw := w.c.bw
	writeStatusLine(bw, code)
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(HTTPDate())
		bw.WriteString("\r\n")
	}
	writeHeaders(bw, h)
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if w.closeAfter {
		bw.WriteString("Connection: close\r\n")
	} else if r.ProtoMinor == 0 {
		bw.WriteString("Connection: keep-alive\r\n")
	}
	bw.WriteString("\r\n")
}

var zeroLength = []string{"0"}

// finish completes the response after the handler returned.
func (w *responseWriter) finish() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerSent {
		w.sendHeader(true)
	}
	if w.chunked {
		w.writeLastChunk()
	}
	if w.cl >= 0 && w.written < w.cl && !w.noBody {
		w.closeAfter = true // short body: the client must see the cut
	}
	if w.closeAfter {
		return w.c.bw.Flush()
	}
	return nil
}

// writeLastChunk ends a chunked body with its trailer section (RFC 9112
// 7.1.2): the declared names' values and every http.TrailerPrefix key.
func (w *responseWriter) writeLastChunk() {
	bw := w.c.bw
	bw.WriteString("0\r\n")
	if len(w.declared) > 0 || hasTrailerKey(w.hdr) {
		appendTrailerFields(w.hdr, w.declared, func(k, v string) {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		})
	}
	bw.WriteString("\r\n")
}

func hasTrailerKey(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

func writeStatusLine(bw *bufio.Writer, code int) {
	if code == 200 {
		bw.WriteString("HTTP/1.1 200 OK\r\n")
		return
	}
	var b [3]byte
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(code))
	bw.WriteString("\r\n")
}

func writeHeaders(bw *bufio.Writer, h http.Header) {
	for k, vv := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue // a trailer, written after the body
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
}

// HTTPDate is the current time in IMF-fixdate, recomputed once a second.
var dateCache atomic.Pointer[[2]any]

func HTTPDate() string {
	now := time.Now()
	sec := now.Unix()
	if p := dateCache.Load(); p != nil && p[0].(int64) == sec {
		return p[1].(string)
	}
	s := now.UTC().Format(http.TimeFormat)
	dateCache.Store(&[2]any{sec, s})
	return s
}
