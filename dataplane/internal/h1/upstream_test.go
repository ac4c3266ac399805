package h1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// parse runs the response-head parser over raw bytes.
func parse(raw string) (*Response, http.Header, *bufio.Reader, error) {
	c1, c2 := net.Pipe()
	go func() { io.WriteString(c2, raw); c2.Close() }()
	br := bufio.NewReader(c1)
	h := http.Header{}
	res := &Response{}
	var scratch []byte
	err := ReadResponseHead(br, &scratch, res, h)
	return res, h, br, err
}

func TestReadResponseHead(t *testing.T) {
	cases := []struct {
		name, raw string
		status    int
		cl        int64
		chunked   bool
		close     bool
		header    map[string]string
		wantErr   bool
	}{
		{name: "simple", raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello", status: 200, cl: 5, header: map[string]string{"Content-Type": "text/plain", "Content-Length": "5"}},
		{name: "lowercase and spaces", raw: "HTTP/1.1 404 Not Found\r\ncontent-length:  3 \r\nx-custom-thing: v\r\n\r\nabc", status: 404, cl: 3, header: map[string]string{"X-Custom-Thing": "v"}},
		{name: "bare LF", raw: "HTTP/1.1 200 OK\nContent-Length: 0\n\n", status: 200, cl: 0},
		{name: "chunked wins over length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n", status: 200, cl: -1, chunked: true, header: map[string]string{"Content-Length": ""}},
		{name: "connection close and listed hop header", raw: "HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n\r\n", status: 200, cl: -1, close: true, header: map[string]string{"X-Hop": "", "Keep-Alive": ""}},
		{name: "http/1.0 closes", raw: "HTTP/1.0 200 OK\r\n\r\n", status: 200, cl: -1, close: true},
		{name: "1xx skipped", raw: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", status: 201, cl: 0, header: map[string]string{"Link": ""}},
		{name: "repeated header", raw: "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n", status: 200, cl: 0},
		{name: "bad status line", raw: "HTTP/2 200\r\n\r\n", wantErr: true},
		{name: "bad status code", raw: "HTTP/1.1 2x0 OK\r\n\r\n", wantErr: true},
		{name: "bad content length", raw: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantErr: true},
		{name: "header without colon", raw: "HTTP/1.1 200 OK\r\nnocolon\r\n\r\n", wantErr: true},
		{name: "truncated", raw: "HTTP/1.1 200 OK\r\nContent-Le", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, h, _, err := parse(tc.raw)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error for %q", tc.raw)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.status || res.ContentLength != tc.cl || res.Chunked != tc.chunked || res.Close != tc.close {
				t.Errorf("got %+v", res)
			}
			for k, v := range tc.header {
				if got := h.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if tc.name == "repeated header" && len(h["Set-Cookie"]) != 2 {
				t.Errorf("Set-Cookie %v", h["Set-Cookie"])
			}
		})
	}
}

func TestChunkedReader(t *testing.T) {
	for _, tc := range []struct {
		name, raw, want string
		wantErr         bool
	}{
		{name: "chunks with extension and trailer", raw: "5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\nTrailer: 1\r\n\r\n", want: "hello, world"},
		{name: "upper hex", raw: "A\r\n0123456789\r\n0\r\n\r\n", want: "0123456789"},
		{name: "bad size", raw: "zz\r\nhello\r\n", wantErr: true},
		{name: "missing CRLF after data", raw: "5\r\nhelloXX0\r\n\r\n", wantErr: true},
		{name: "truncated", raw: "5\r\nhel", wantErr: true},
		{name: "size overflow", raw: "ffffffffffffffffff\r\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cr ChunkedReader
			cr.Reset(bufio.NewReader(strings.NewReader(tc.raw)))
			var got []byte
			var err error
			for {
				var b []byte
				b, err = cr.Peek(3)
				if err != nil {
					break
				}
				got = append(got, b...)
				if err = cr.Advance(len(b)); err != nil {
					break
				}
			}
			if tc.wantErr {
				if err == io.EOF {
					t.Fatalf("no error, read %q", got)
				}
				return
			}
			if err != io.EOF || string(got) != tc.want {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}
