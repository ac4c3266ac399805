package h2

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// serve runs s on a fresh loopback listener until the test ends.
func serve(t *testing.T, o Options) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(o)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); s.ServeConn(c, nil) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.Close(); wg.Wait() })
	return s, ln.Addr().String()
}

func h2cClient() *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr}
}

// echo answers with the request's method, path, body digest and trailer.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Header().Set("X-Len", fmt.Sprint(n))
	w.Header().Set("X-Sum", fmt.Sprintf("%x", h.Sum(nil)))
	w.Header().Set("X-Trailer-In", r.Trailer.Get("X-In"))
	w.Header().Set(http.TrailerPrefix+"X-Out", "done")
	if r.URL.Path == "/big" {
		_, _ = w.Write(bytes.Repeat([]byte("b"), 3<<20))
		return
	}
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), r.Proto)
})

func TestRequestsAndFlowControl(t *testing.T) {
	_, addr := serve(t, Options{Handler: echo})
	c := h2cClient()
	defer c.CloseIdleConnections()

	// Many small requests at once on one connection.
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.Get(fmt.Sprintf("http://%s/a/%d?q=1", addr, i))
			if err != nil {
				errs <- err
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if want := fmt.Sprintf("GET /a/%d?q=1 HTTP/2.0", i); string(b) != want || res.ProtoMajor != 2 {
				errs <- fmt.Errorf("got %q (%s), want %q", b, res.Proto, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// A body larger than every window, both ways, with trailers.
	in := bytes.Repeat([]byte("0123456789"), 300_000)
	req, _ := http.NewRequest("POST", "http://"+addr+"/big", io.NopCloser(bytes.NewReader(in)))
	req.ContentLength = -1
	req.Trailer = http.Header{"X-In": {"t1"}}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if res.Header.Get("X-Len") != fmt.Sprint(len(in)) || res.Header.Get("X-Sum") != fmt.Sprintf("%x", sha256.Sum256(in)) {
		t.Errorf("request body arrived as %s bytes, sum %s", res.Header.Get("X-Len"), res.Header.Get("X-Sum"))
	}
	if len(out) != 3<<20 {
		t.Errorf("response body %d bytes, want %d", len(out), 3<<20)
	}
	if res.Header.Get("X-Trailer-In") != "t1" || res.Trailer.Get("X-Out") != "done" {
		t.Errorf("trailers: in %q, out %v", res.Header.Get("X-Trailer-In"), res.Trailer)
	}
}

// rawConn is an HTTP/2 client speaking frames.
type rawConn struct {
	t   *testing.T
	c   net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	hb  bytes.Buffer
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	rc := &rawConn{t: t, c: c, fr: http2.NewFramer(c, c)}
	rc.enc = hpack.NewEncoder(&rc.hb)
	rc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	io.WriteString(c, http2.ClientPreface)
	rc.fr.WriteSettings()
	return rc
}

func (rc *rawConn) block(fields ...string) []byte {
	rc.hb.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		rc.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return append([]byte(nil), rc.hb.Bytes()...)
}

func (rc *rawConn) get(id uint32, path string, end bool, extra ...string) {
	f := append([]string{":method", "GET", ":scheme", "http", ":authority", "x", ":path", path}, extra...)
	if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.block(f...), EndStream: end, EndHeaders: true}); err != nil {
		rc.t.Fatal(err)
	}
}

// until reads frames until match returns true; it fails the test if the
// connection ends first.
func (rc *rawConn) until(what string, match func(http2.Frame) bool) http2.Frame {
	rc.t.Helper()
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			rc.t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(f) {
			return f
		}
	}
}

// goAway waits for GOAWAY with code and then for the connection to close.
func (rc *rawConn) goAway(code http2.ErrCode) {
	rc.t.Helper()
	f := rc.until("GOAWAY", func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	if f.ErrCode != code {
		rc.t.Fatalf("GOAWAY %v, want %v", f.ErrCode, code)
	}
	for {
		if _, err := rc.fr.ReadFrame(); err != nil {
			if errors.Is(err, io.EOF) || strings.Contains(err.Error(), "reset") {
				return
			}
			rc.t.Fatalf("after GOAWAY: %v, want the connection closed", err)
		}
	}
}

func (rc *rawConn) rst(id uint32) http2.ErrCode {
	rc.t.Helper()
	f := rc.until(fmt.Sprint("RST_STREAM ", id), func(f http2.Frame) bool {
		r, ok := f.(*http2.RSTStreamFrame)
		return ok && r.StreamID == id
	})
	return f.(*http2.RSTStreamFrame).ErrCode
}

func (rc *rawConn) status(id uint32) string {
	rc.t.Helper()
	f := rc.until(fmt.Sprint("HEADERS ", id), func(f http2.Frame) bool {
		h, ok := f.(*http2.MetaHeadersFrame)
		return ok && h.StreamID == id
	})
	return f.(*http2.MetaHeadersFrame).PseudoValue("status")
}

func TestControlFrames(t *testing.T) {
	_, addr := serve(t, Options{Handler: echo})
	rc := dialRaw(t, addr)
	rc.fr.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	p := rc.until("PING ACK", func(f http2.Frame) bool { p, ok := f.(*http2.PingFrame); return ok && p.IsAck() }).(*http2.PingFrame)
	if p.Data != [8]byte{1, 2, 3, 4, 5, 6, 7, 8} {
		t.Errorf("PING ACK data %v", p.Data)
	}
	rc.get(1, "/x", true)
	if s := rc.status(1); s != "200" {
		t.Errorf("status %s", s)
	}
	// Malformed requests are answered 400 and the connection stays.
	rc.get(3, "/x", true, "Bad-Case", "v")
	if s := rc.status(3); s != "400" {
		t.Errorf("uppercase header name: status %s, want 400", s)
	}
	rc.get(5, "/x", true, "connection", "close")
	if s := rc.status(5); s != "400" {
		t.Errorf("connection header: status %s, want 400", s)
	}
	rc.get(7, "/x", true)
	if s := rc.status(7); s != "200" {
		t.Errorf("after malformed requests: status %s", s)
	}
}

func TestSecurityWindowOverflow(t *testing.T) {
	_, addr := serve(t, Options{Handler: echo})
	// Connection window past 2^31-1: connection error.
	rc := dialRaw(t, addr)
	rc.fr.WriteWindowUpdate(0, 1<<31-1)
	rc.goAway(http2.ErrCodeFlowControl)

	// Stream window past 2^31-1: that stream is reset, the connection
	// serves on.
	block := make(chan struct{})
	defer close(block)
	_, addr2 := serve(t, Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			<-block
		}
	})})
	rc = dialRaw(t, addr2)
	rc.get(1, "/block", true)
	rc.fr.WriteWindowUpdate(1, 1<<31-1)
	if code := rc.rst(1); code != http2.ErrCodeFlowControl {
		t.Errorf("stream window overflow: RST_STREAM %v, want FLOW_CONTROL_ERROR", code)
	}
	rc.get(3, "/ok", true)
	if s := rc.status(3); s != "200" {
		t.Errorf("after the reset: status %s", s)
	}

	// DATA past the window the server gave: connection error.
	rc = dialRaw(t, addr2)
	rc.get(1, "/block", false)
	chunk := make([]byte, 16384)
	for range (connRecvWindow / len(chunk)) + 2 {
		if err := rc.fr.WriteData(1, false, chunk); err != nil {
			break
		}
	}
	rc.goAway(http2.ErrCodeFlowControl)
}

func TestSecurityConcurrentStreams(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	_, addr := serve(t, Options{MaxConcurrentStreams: 2, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			started <- struct{}{}
			<-release
		}
	})})
	rc := dialRaw(t, addr)
	rc.get(1, "/block", true)
	rc.get(3, "/block", true)
	<-started
	<-started
	rc.get(5, "/block", true)
	if code := rc.rst(5); code != http2.ErrCodeRefusedStream {
		t.Errorf("third stream: RST_STREAM %v, want REFUSED_STREAM", code)
	}
	close(release)
	answered := map[uint32]bool{}
	rc.until("HEADERS 1 and 3", func(f http2.Frame) bool {
		if h, ok := f.(*http2.MetaHeadersFrame); ok {
			answered[h.StreamID] = true
		}
		return answered[1] && answered[3]
	})
	// Retired streams free their slots (the count drops once each
	// handler returned, which the client cannot observe: retry).
	for id := uint32(7); ; id += 2 {
		rc.get(id, "/ok", true)
		f := rc.until("answer", func(f http2.Frame) bool {
			switch f := f.(type) {
			case *http2.MetaHeadersFrame:
				return f.StreamID == id
			case *http2.RSTStreamFrame:
				return f.StreamID == id
			}
			return false
		})
		if _, ok := f.(*http2.MetaHeadersFrame); ok {
			break
		}
		if id > 2001 {
			t.Fatal("streams stay refused after the running ones ended")
		}
	}
}

func TestSecurityContinuationFlood(t *testing.T) {
	_, addr := serve(t, Options{Handler: echo})
	rc := dialRaw(t, addr)
	blk := rc.block(":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/")
	rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndStream: true})
	for range 1000 {
		if err := rc.fr.WriteContinuation(1, false, nil); err != nil {
			break
		}
	}
	rc.goAway(http2.ErrCodeEnhanceYourCalm)

	// A header block far beyond the header list limit is not decoded.
	_, addr = serve(t, Options{Handler: echo, MaxHeaderBytes: 4096})
	rc = dialRaw(t, addr)
	rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndStream: true})
	big := bytes.Repeat([]byte{0}, 4096)
	for range 10 {
		if err := rc.fr.WriteContinuation(1, false, big); err != nil {
			break
		}
	}
	rc.goAway(http2.ErrCodeEnhanceYourCalm)
}

func TestHeaderListLimit(t *testing.T) {
	_, addr := serve(t, Options{Handler: echo, MaxHeaderBytes: 4096})
	rc := dialRaw(t, addr)
	rc.get(1, "/", true, "x-big", strings.Repeat("a", 3000), "x-big2", strings.Repeat("b", 3000))
	if s := rc.status(1); s != "431" {
		t.Errorf("header list over the limit: status %s, want 431", s)
	}
	rc.get(3, "/", true, "x-small", "a")
	if s := rc.status(3); s != "200" {
		t.Errorf("next request: status %s", s)
	}
}

// TestSecurityPingFloodUnread: a client that floods PINGs and never
// reads the ACKs gets no unbounded queue: the server stops reading once
// its writes stall (TCP pushes back on the client) or, while they trickle,
// closes the connection past maxControlPending queued bytes.
func TestSecurityPingFloodUnread(t *testing.T) {
	_, addr := serve(t, Options{Handler: echo})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, nil)
	_ = c.SetWriteDeadline(time.Now().Add(3 * time.Second))
	const pings = 4_000_000 // 68 MB, more than every socket buffer on the way
	var werr error
	for i := 0; i < pings && werr == nil; i++ {
		werr = fr.WritePing(false, [8]byte{})
	}
	if werr == nil {
		t.Fatal("the server read every PING of a client that never read an ACK")
	}
}

func TestShutdownGoAway(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	s, addr := serve(t, Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "late")
	})})
	rc := dialRaw(t, addr)
	rc.get(1, "/", true)
	<-started
	done := make(chan error)
	go func() { done <- s.Shutdown(context.Background()) }()
	g := rc.until("GOAWAY", func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	if g.ErrCode != http2.ErrCodeNo || g.LastStreamID != 1 {
		t.Errorf("GOAWAY %v last %d, want NO_ERROR last 1", g.ErrCode, g.LastStreamID)
	}
	close(release)
	var body []byte
	rc.until("stream end", func(f http2.Frame) bool {
		if d, ok := f.(*http2.DataFrame); ok {
			body = append(body, d.Data()...)
			return d.StreamEnded()
		}
		return false
	})
	if string(body) != "late" {
		t.Errorf("in-flight stream got %q", body)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestEarlyResponseUpload: a handler that answers without reading the
// upload; the DATA the client still sends is dropped without a reset per
// frame (h2guard counts resets against the client), and the connection
// keeps serving.
func TestEarlyResponseUpload(t *testing.T) {
	_, addr := serve(t, Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	})})
	rc := dialRaw(t, addr)
	rc.get(1, "/up", false)
	if s := rc.status(1); s != "401" {
		t.Fatalf("status %s", s)
	}
	chunk := make([]byte, 16000)
	for range 40 {
		rc.fr.WriteData(1, false, chunk)
	}
	rc.get(3, "/next", true)
	resets := 0
	rc.until("HEADERS 3", func(f http2.Frame) bool {
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 && f.ErrCode != http2.ErrCodeNo {
				resets++
			}
		case *http2.MetaHeadersFrame:
			return f.StreamID == 3
		}
		return false
	})
	if resets > 0 {
		t.Errorf("%d resets for DATA after the response", resets)
	}
}

// TestSecurityStalledReader: a client that opens every window and then
// stops reading does not hold a handler (and the connection) forever: a
// write that makes no progress for IdleTimeout fails.
func TestSecurityStalledReader(t *testing.T) {
	werr := make(chan error, 1)
	_, addr := serve(t, Options{IdleTimeout: 300 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				werr <- err
				return
			}
		}
	})})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	fr.WriteWindowUpdate(0, 1<<31-1-65535)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	select {
	case err := <-werr:
		t.Logf("handler write failed as it should: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the handler is still writing to a client that stopped reading")
	}
}
