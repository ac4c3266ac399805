package dataplane

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/flexgw/flexgw/ir"
)

// h2Client is a raw HTTP/2 client (x/net's Framer) that can misbehave.
type h2Client struct {
	t      *testing.T
	c      net.Conn
	fr     *http2.Framer
	scheme string
	next   uint32
}

func dialH2(t *testing.T, addr string, useTLS bool) *h2Client {
	t.Helper()
	var c net.Conn
	var err error
	scheme := "http"
	if useTLS {
		scheme = "https"
		c, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		if err == nil && c.(*tls.Conn).ConnectionState().NegotiatedProtocol != "h2" {
			t.Fatal("TLS listener did not negotiate h2")
		}
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.AllowIllegalWrites = true // WINDOW_UPDATE of 0
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return &h2Client{t: t, c: c, fr: fr, scheme: scheme, next: 1}
}

// headers opens a stream for GET path; endStream false leaves it open.
func (h *h2Client) headers(path string, endStream bool) (uint32, error) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", h.scheme}, {":authority", "gw.example"}, {":path", path}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	id := h.next
	h.next += 2
	return id, h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: buf.Bytes(), EndStream: endStream, EndHeaders: true})
}

// readUntilClosed reads frames until the server closes the connection and
// returns the GOAWAY error code it sent, if any.
func (h *h2Client) readUntilClosed() (goAway *http2.GoAwayFrame, err error) {
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return goAway, err
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			cp := *g
			goAway = &cp
		}
	}
}

// afterPath is the path TestSecurityH2ResetReconnect asks for after the
// attack, counted apart from the attack's own late arrivals.
const afterPath = "/public/after"

// h2ResetGateway serves /public on plain HTTP (h2c) and HTTPS, counting
// what reaches the upstream (and, in after, requests for afterPath).
func h2ResetGateway(t *testing.T) (g *gateway, tlsAddr string, dispatched *atomic.Int64) {
	g, tlsAddr, dispatched, _ = h2ResetGatewayAfter(t)
	return g, tlsAddr, dispatched
}

func h2ResetGatewayAfter(t *testing.T) (g *gateway, tlsAddr string, dispatched, after *atomic.Int64) {
	dispatched, after = new(atomic.Int64), new(atomic.Int64)
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		dispatched.Add(1)
		if strings.HasSuffix(r.URL.Path, "/after") { // the API may strip its base path
			after.Add(1)
		}
		io.WriteString(w, "ok")
	})
	certPEM, keyPEM, _ := selfSigned(t)
	s := snapshot(1, []*ir.Service{svc("up", endpointOf(t, up))}, api("public", "/public", catchAll("all", "up")))
	s.Listeners = append(s.Listeners, &ir.Listener{
		Name: "https_127.0.0.2_0", Protocol: ir.HTTPS, Host: "127.0.0.2", Port: 0,
		TLS:  &ir.ServerTLS{CertPEM: certPEM, KeyPEM: keyPEM},
		APIs: s.Listeners[0].APIs,
	})
	g = startGateway(t, s)
	return g, g.dp.Addr("127.0.0.2:0"), dispatched, after
}

// TestSecurityH2Resets: a client that resets its streams at once (rapid
// reset, CVE-2023-44487) or makes the server reset them (MadeYouReset:
// WINDOW_UPDATE of 0 on an open stream) gets GOAWAY ENHANCE_YOUR_CALM and
// a closed connection after the 200 resets a connection may make in 10 s,
// over h2c and over TLS; few of its streams reach the upstream.
func TestSecurityH2Resets(t *testing.T) {
	const streams = 5000
	for _, tc := range []struct {
		name   string
		attack func(h *h2Client) error
	}{
		{"rapid reset", func(h *h2Client) error {
			id, err := h.headers("/public/a", true)
			if err != nil {
				return err
			}
			return h.fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}},
		{"MadeYouReset (WINDOW_UPDATE of 0)", func(h *h2Client) error {
			id, err := h.headers("/public/a", false)
			if err != nil {
				return err
			}
			return h.fr.WriteWindowUpdate(id, 0)
		}},
	} {
		for _, useTLS := range []bool{false, true} {
			name := tc.name + "/h2c"
			if useTLS {
				name = tc.name + "/tls"
			}
			t.Run(name, func(t *testing.T) {
				// A gateway each: a trip penalises the client address
				// (TestSecurityH2ResetReconnect).
				g, tlsAddr, dispatched := h2ResetGateway(t)
				addr := g.addr
				if useTLS {
					addr = tlsAddr
				}
				before := dispatched.Load()
				h := dialH2(t, addr, useTLS)
				sent := make(chan int, 1)
				go func() {
					n := 0
					for ; n < streams; n++ {
						if tc.attack(h) != nil {
							break
						}
					}
					sent <- n
				}()
				goAway, err := h.readUntilClosed()
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("connection still open after %d attack streams", <-sent)
				}
				n := <-sent
				if goAway != nil && goAway.ErrCode != http2.ErrCodeEnhanceYourCalm {
					t.Errorf("GOAWAY %v, want ENHANCE_YOUR_CALM", goAway.ErrCode)
				}
				if n == streams {
					// All written (they fit the socket buffers) is fine as
					// long as the server closed: check it stopped early.
					t.Logf("all %d streams written before the close", n)
				}
				if d := dispatched.Load() - before; d > 1000 {
					t.Errorf("%d of the attack's streams reached the upstream", d)
				}
				t.Logf("%s: server closed after the client wrote %d streams (GOAWAY %v, read error %v); %d upstream requests",
					name, n, goAway != nil, err, dispatched.Load()-before)
			})
		}
	}
}

// TestH2ResetsWithinLimits: resets a normal client makes (a third of its
// streams cancelled, 300 of them) do not close its connection, which
// keeps answering.
func TestH2ResetsWithinLimits(t *testing.T) {
	g, _, _ := h2ResetGateway(t)
	h := dialH2(t, g.addr, false)
	responses := make(chan uint32, 16)
	readErr := make(chan error, 1)
	go func() {
		for {
			f, err := h.fr.ReadFrame()
			if err != nil {
				readErr <- err
				return
			}
			switch f := f.(type) {
			case *http2.GoAwayFrame:
				readErr <- errors.New("GOAWAY " + f.ErrCode.String())
				return
			case *http2.DataFrame:
				if f.StreamEnded() {
					responses <- f.StreamID
				}
			case *http2.HeadersFrame:
				if f.StreamEnded() {
					responses <- f.StreamID
				}
			}
		}
	}()
	for i := 0; i < 900; i++ {
		if i%3 == 0 {
			id, err := h.headers("/public/a", true)
			if err == nil {
				err = h.fr.WriteRSTStream(id, http2.ErrCodeCancel)
			}
			if err != nil {
				t.Fatalf("stream %d: %v", i, err)
			}
			continue
		}
		id, err := h.headers("/public/a", true)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		for done := false; !done; {
			select {
			case got := <-responses:
				done = got == id
			case err := <-readErr:
				t.Fatalf("after %d streams (%d resets): %v", i, (i+2)/3, err)
			}
		}
	}
}

// TestSecurityH2ResetReconnect: a client whose connection was closed for
// rapid reset cannot reconnect for a fresh budget. For the reset window
// its new HTTP/2 connections, h2c or TLS, are closed before any stream
// reaches the upstream; another client address is served as before.
func TestSecurityH2ResetReconnect(t *testing.T) {
	g, tlsAddr, _, after := h2ResetGatewayAfter(t)
	h := dialH2(t, g.addr, false)
	go func() {
		for i := 0; i < 5000; i++ {
			id, err := h.headers("/public/a", true)
			if err == nil {
				err = h.fr.WriteRSTStream(id, http2.ErrCodeCancel)
			}
			if err != nil {
				return
			}
		}
	}()
	if _, err := h.readUntilClosed(); err == nil {
		t.Fatal("the attack's connection was not closed")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the attack's connection was not closed")
	}
	// The attacker's address reconnects and asks for 50 plain requests;
	// write errors are fine (the gateway may close first).
	for _, useTLS := range []bool{false, true} {
		var c net.Conn
		var err error
		if useTLS {
			c, err = tls.Dial("tcp", tlsAddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		} else {
			c, err = net.Dial("tcp", g.addr)
		}
		if err != nil {
			continue // refused during the handshake: nothing served either
		}
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		h := &h2Client{t: t, c: c, fr: http2.NewFramer(c, c), scheme: "http", next: 1}
		if useTLS {
			h.scheme = "https"
		}
		if _, err := io.WriteString(c, http2.ClientPreface); err == nil && h.fr.WriteSettings() == nil {
			for i := 0; i < 50; i++ {
				if _, err := h.headers(afterPath, true); err != nil {
					break
				}
			}
		}
		for {
			f, err := h.fr.ReadFrame()
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("tls=%v: the penalised client's new connection stayed open", useTLS)
				}
				break
			}
			if hf, ok := f.(*http2.HeadersFrame); ok {
				t.Fatalf("tls=%v: the penalised client got a response on stream %d", useTLS, hf.StreamID)
			}
		}
		c.Close()
	}
	if d := after.Load(); d != 0 {
		t.Errorf("%d requests of the penalised client reached the upstream", d)
	}
	// Another address is not penalised.
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}
	c, err := d.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: nil}
	cc, err := tr.NewClientConn(c)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+g.addr+afterPath, nil)
	resp, err := cc.RoundTrip(req)
	if err != nil {
		t.Fatalf("another client address: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || after.Load() != 1 {
		t.Fatalf("another client address: status %d, %d upstream requests", resp.StatusCode, after.Load())
	}
}
