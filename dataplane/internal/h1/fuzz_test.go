package h1

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
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
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\nContent-Length: 9\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
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
		_, err = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		if err == nil {
			checkTrailerMap(t, r.Trailer)
		}
	})
}

// checkTrailerMap asserts what every parsed trailer section must hold:
// canonical token names the proxy may relay, values without controls.
func checkTrailerMap(t *testing.T, tr http.Header) {
	for k, vv := range tr {
		if !TrailerAllowed(k) || !validToken(k) || CanonicalKey(k) != k {
			t.Fatalf("trailer field %q kept", k)
		}
		for _, v := range vv {
			if !validValue(v) {
				t.Fatalf("trailer value %q kept", v)
			}
		}
	}
}

// FuzzChunkedTrailers feeds arbitrary bytes to the chunked decoder as a
// body and checks its trailer section: a body read to the end keeps only
// relayable fields within the limits, and writing them as a trailer
// section and reading that back gives the same fields (what one hop
// writes, the next reads the same way: no smuggling through trailers).
func FuzzChunkedTrailers(f *testing.F) {
	for _, s := range []string{
		"0\r\n\r\n",
		"3\r\nabc\r\n0\r\nX-Sum: 1\r\nGrpc-Status: 0\r\n\r\n",
		"1;a=b\r\nx\r\n0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nHost: e\r\n\r\n",
		"0\r\nX-A: 1\r\n X-B: folded\r\n\r\n",
		"0\r\nX-A: a\x00b\r\n\r\n",
		"0\r\nX-A:1\r\nx-a: 2\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var cr ChunkedReader
		cr.Reset(bufio.NewReader(bytes.NewReader(raw)))
		cr.SetTrailerLimits(8, 512)
		for {
			b, err := cr.Peek(64)
			if err == io.EOF {
				break
			}
			if err != nil {
				return
			}
			if cr.Advance(len(b)) != nil {
				return
			}
		}
		tr := cr.Trailers()
		checkTrailerMap(t, tr)
		n := 0
		for _, vv := range tr {
			n += len(vv)
		}
		if n > 8 {
			t.Fatalf("%d trailer fields kept over a limit of 8", n)
		}
		var out bytes.Buffer
		out.WriteString("0\r\n")
		appendTrailerFields(prefixed(tr), nil, func(k, v string) { out.WriteString(k + ": " + v + "\r\n") })
		out.WriteString("\r\n")
		var again ChunkedReader
		again.Reset(bufio.NewReader(&out))
		if _, err := again.Peek(1); err != io.EOF {
			t.Fatalf("re-reading the written trailers: %v\n%q", err, out.String())
		}
		got := again.Trailers()
		if len(got) != len(tr) {
			t.Fatalf("trailers %v written and read back as %v", tr, got)
		}
		for k, vv := range tr {
			if strings.Join(got[k], "\x00") != strings.Join(vv, "\x00") {
				t.Fatalf("trailer %s: %q written, %q read back", k, vv, got[k])
			}
		}
	})
}

// prefixed is tr in net/http's TrailerPrefix form, as a writer holds it.
func prefixed(tr http.Header) http.Header {
	h := http.Header{}
	for k, vv := range tr {
		h[http.TrailerPrefix+k] = vv
	}
	return h
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
