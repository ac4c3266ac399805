package dataplane

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/ir"
)

// scriptedUpstream is testutil.RawUpstream as an endpoint of a snapshot.
func scriptedUpstream(t *testing.T, answer func(r testutil.RawRequest) string) (ir.Endpoint, <-chan testutil.RawRequest) {
	addr, got := testutil.RawUpstream(t, answer)
	return ir.Endpoint{Host: "127.0.0.1", Port: addr.Port}, got
}

// smugglingTrailers is a trailer section that tries to reframe the
// message or re-route it at the next hop, around one legitimate field.
const smugglingTrailers = "X-Checksum: abc123\r\n" +
	"Content-Length: 0\r\n" +
	"Transfer-Encoding: chunked\r\n" +
	"Host: evil.example\r\n" +
	"Authorization: Bearer stolen\r\n" +
	"Set-Cookie: session=evil\r\n" +
	"Content-Type: text/evil\r\n" +
	"Trailer: X-Checksum\r\n" +
	"Grpc-Status: 0\r\n"

// forbidden are the smuggling fields that must not cross the gateway.
var forbidden = []string{"Content-Length", "Transfer-Encoding", "Host", "Authorization", "Set-Cookie", "Content-Type", "Trailer"}

func checkTrailers(t *testing.T, where string, tr http.Header) {
	t.Helper()
	if tr.Get("X-Checksum") != "abc123" || tr.Get("Grpc-Status") != "0" {
		t.Errorf("%s: trailers %v, want X-Checksum and Grpc-Status relayed", where, tr)
	}
	for _, k := range forbidden {
		if v, ok := tr[k]; ok {
			t.Errorf("%s: forbidden trailer %s: %q relayed", where, k, v)
		}
	}
}

// TestTrailersUpstreamToClient: an HTTP/1.1 upstream's chunked trailers
// reach an HTTP/1.1 client as a trailer section and an HTTP/2 client as
// trailers, minus the fields RFC 9110 6.5.1 forbids; the smuggling
// attempt among them changes neither the framing of the response nor
// that of the next one on the same client connection.
func TestTrailersUpstreamToClient(t *testing.T) {
	ep, _ := scriptedUpstream(t, func(r testutil.RawRequest) string {
		return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-Checksum\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5\r\nhello\r\n6\r\n world\r\n0\r\n" + smugglingTrailers + "\r\n"
	})
	g := startGateway(t, snapshot(1, []*ir.Service{svc("raw", ep)}, api("api", "/", catchAll("r", "raw"))))

	t.Run("http1", func(t *testing.T) {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		// Two requests on one connection: the second is read where the
		// first response really ended.
		for i := 0; i < 2; i++ {
			fmt.Fprintf(c, "GET /t%d HTTP/1.1\r\nHost: gw\r\n\r\n", i)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			b, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || string(b) != "hello world" || res.StatusCode != 200 {
				t.Fatalf("response %d: %d %q %v", i, res.StatusCode, b, err)
			}
			if len(res.TransferEncoding) != 1 || res.Header.Get("Content-Type") != "text/plain" {
				t.Errorf("response %d head: %v %v", i, res.TransferEncoding, res.Header)
			}
			checkTrailers(t, "HTTP/1.1 client", res.Trailer)
		}
	})
	t.Run("h2c", func(t *testing.T) {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cc, err := (&http2.Transport{AllowHTTP: true}).NewClientConn(c)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+g.addr+"/h2", nil)
		res, err := cc.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(b) != "hello world" {
			t.Fatalf("body %q", b)
		}
		checkTrailers(t, "HTTP/2 client", res.Trailer)
	})
}

// TestTrailersClientToUpstream: a chunked request's trailers reach the
// HTTP/1.1 upstream, minus the forbidden fields, from an HTTP/1.1 client
// (the h1 server) and from an HTTP/2 one; the next request on the client
// connection is unaffected by the smuggling attempt.
func TestTrailersClientToUpstream(t *testing.T) {
	ep, got := scriptedUpstream(t, func(r testutil.RawRequest) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	})
	g := startGateway(t, snapshot(1, []*ir.Service{svc("raw", ep)}, api("api", "/", catchAll("r", "raw"))))
	next := func(t *testing.T) testutil.RawRequest {
		t.Helper()
		select {
		case r := <-got:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("the upstream got no request")
		}
		return testutil.RawRequest{}
	}

	t.Run("http1", func(t *testing.T) {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		io.WriteString(c, "POST /up HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"+
			"4\r\ndata\r\n0\r\n"+smugglingTrailers+"\r\n"+
			"GET /second HTTP/1.1\r\nHost: gw\r\n\r\n")
		for i, path := range []string{"/up", "/second"} {
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Fatalf("response %d: %d", i, res.StatusCode)
			}
			r := next(t)
			if r.Err != nil || r.Req.URL.Path != path {
				t.Fatalf("upstream request %d: %s %v", i, r.Req.URL.Path, r.Err)
			}
			if i == 0 {
				if r.Body != "data" || r.Req.Host == "evil.example" {
					t.Errorf("body %q host %q", r.Body, r.Req.Host)
				}
				checkTrailers(t, "upstream from HTTP/1.1 client", r.Trailer)
			}
		}
	})
	t.Run("h2c", func(t *testing.T) {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cc, err := (&http2.Transport{AllowHTTP: true}).NewClientConn(c)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, "http://"+g.addr+"/h2", io.NopCloser(strings.NewReader("data")))
		req.ContentLength = -1
		// (The HTTP/2 server refuses a forbidden trailer field with a
		// stream error before the data plane sees it.)
		req.Trailer = http.Header{"X-Checksum": {"abc123"}, "Grpc-Status": {"0"}}
		res, err := cc.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		r := next(t)
		if r.Err != nil || r.Body != "data" {
			t.Fatalf("upstream request: %q %v", r.Body, r.Err)
		}
		checkTrailers(t, "upstream from HTTP/2 client", r.Trailer)
	})
}

// TestTrailerLimits: a trailer section over the header limits (field
// count, bytes) fails the message it ends, as an oversized head would,
// instead of being buffered: the client of an upstream that sends one
// sees a broken response (UR), and a client that sends one gets 400 and
// the upstream never sees a complete request.
func TestTrailerLimits(t *testing.T) {
	many := strings.Repeat("X-T: v\r\n", 20)
	huge := "X-Big: " + strings.Repeat("a", 40000) + "\r\n" // two: over the 64 KiB of a response head
	ep, got := scriptedUpstream(t, func(r testutil.RawRequest) string {
		tr := many
		if r.Req.URL.Path == "/huge" {
			tr = huge + huge
		}
		return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n" + tr + "\r\n"
	})
	g := startGateway(t, snapshot(1, []*ir.Service{svc("raw", ep)}, api("api", "/", catchAll("r", "raw"))), func(o *Options) {
		o.MaxHeaders = 10
		o.MaxHeaderBytes = 3000
	})
	for _, path := range []string{"/many", "/huge"} {
		// The head may or may not have left before the cut: either way
		// the client must not see a complete response.
		res, err := http.Get(g.url(path))
		if err == nil {
			_, err = io.ReadAll(res.Body)
			res.Body.Close()
		}
		if err == nil {
			t.Errorf("%s: an upstream trailer section over the limits was relayed as a complete response", path)
		}
		<-got
		rec := g.sink.waitRecord(t, func(r accesslog.Record) bool { return r.Path == path })
		if !strings.Contains(rec.ResponseFlags, "UR") {
			t.Errorf("%s: flags %q, want UR", path, rec.ResponseFlags)
		}
	}
	// From the client: 20 trailer fields against a limit of 10.
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /in HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"+many+"\r\n")
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("client trailer section over the limit: %d, want 400", res.StatusCode)
	}
	r := <-got
	if r.Err == nil {
		t.Errorf("the upstream got a complete request: %q %v", r.Body, r.Trailer)
	}
}

// TestTrailersClientToHTTP2Upstream: an HTTP/1.1 client that declares its
// trailers (Trailer header) has them relayed to an HTTP/2 upstream, which
// must be told before the body; a forbidden one it declared is not.
func TestTrailersClientToHTTP2Upstream(t *testing.T) {
	got := make(chan http.Header, 1)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		got <- r.Trailer
	}))
	up.Config.Protocols = new(http.Protocols)
	up.Config.Protocols.SetUnencryptedHTTP2(true)
	up.Start()
	defer up.Close()
	service := svc("h2", endpointOf(t, up))
	service.HTTP2 = true
	g := startGateway(t, snapshot(1, []*ir.Service{service}, api("api", "/", catchAll("r", "h2"))))
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: gw\r\nTrailer: X-Checksum, Grpc-Status, Authorization\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"4\r\ndata\r\n0\r\n"+smugglingTrailers+"\r\n")
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	select {
	case tr := <-got:
		checkTrailers(t, "HTTP/2 upstream", tr)
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream got no request")
	}
}
