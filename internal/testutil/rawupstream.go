package testutil

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
)

// RawRequest is one request a RawUpstream read: the request, its whole
// body and trailers, and the error reading the body ended with.
type RawRequest struct {
	Req     *http.Request
	Body    string
	Trailer http.Header
	Err     error
}

// RawUpstream is an HTTP/1.1 upstream on a real socket that answers every
// request with answer(request) written verbatim, so a test controls the
// exact framing (chunked trailers, hop-by-hop fields) a proxy relays. It
// returns its address and a channel carrying each request it read (kept
// up to 16 unread; a test that does not read them need not drain it).
func RawUpstream(t testing.TB, answer func(r RawRequest) string) (*net.TCPAddr, <-chan RawRequest) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan RawRequest, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveRaw(c, got, answer)
		}
	}()
	return ln.Addr().(*net.TCPAddr), got
}

func serveRaw(c net.Conn, got chan<- RawRequest, answer func(r RawRequest) string) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		b, err := io.ReadAll(req.Body)
		rr := RawRequest{Req: req, Body: string(b), Trailer: req.Trailer, Err: err}
		select {
		case got <- rr:
		default: // nobody reads them: the answer still goes out
		}
		if err != nil {
			return
		}
		if _, err := io.WriteString(c, answer(rr)); err != nil {
			return
		}
	}
}
