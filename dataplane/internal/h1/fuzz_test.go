package h1

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// FuzzReadRequest feeds arbitrary bytes to the HTTP/1 request parser: it
// must return a request or an error, never panic, and never accept a head
// whose framing is ambiguous.
func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /%zz HTTP/1.0\r\n\r\n",
		"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	srv := NewServer(Options{Handler: http.NotFoundHandler()})
	f.Fuzz(func(t *testing.T, raw []byte) {
		c := newConn(srv, fakeConn{})
		c.br = bufio.NewReader(bytes.NewReader(raw))
		r, status, err := c.readRequest()
		if err != nil {
			if status != 0 && http.StatusText(status) == "" {
				t.Fatalf("unknown status %d", status)
			}
			return
		}
		if r.Method == "" || r.URL == nil || (r.ContentLength < 0 && len(r.TransferEncoding) == 0) {
			t.Fatalf("inconsistent request %+v", r)
		}
		io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	})
}

// fakeConn satisfies net.Conn for parser tests.
type fakeConn struct{ net.Conn }

func (fakeConn) RemoteAddr() net.Addr        { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (fakeConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }
func (fakeConn) Write(b []byte) (int, error) { return len(b), nil }
func (fakeConn) Close() error                { return nil }

func (fakeConn) SetReadDeadline(time.Time) error { return nil }
func (fakeConn) SetDeadline(time.Time) error     { return nil }

// FuzzResponseHead feeds arbitrary bytes to the upstream response parser
// and the chunked decoder.
func FuzzResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.0 101 Switching\r\nUpgrade: websocket\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		br := bufio.NewReader(bytes.NewReader(raw))
		var res Response
		var scratch []byte
		h := http.Header{}
		if err := ReadResponseHead(br, &scratch, &res, h); err != nil {
			return
		}
		if res.Status < 100 || res.Status > 599 || (res.Chunked && res.ContentLength != -1) {
			t.Fatalf("inconsistent response %+v", res)
		}
		if res.Chunked {
			var cr ChunkedReader
			cr.Reset(br)
			for i := 0; i < 1000; i++ {
				b, err := cr.Peek(7)
				if err != nil {
					return
				}
				if cr.Advance(len(b)) != nil {
					return
				}
			}
		}
	})
}
