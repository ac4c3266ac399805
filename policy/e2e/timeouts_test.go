package e2e_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flexgw/flexgw/accesslog"
)

// stream-idle-timeout-flex through the real data plane: an upstream that
// never answers and a client that stops sending its body both end in 504
// "stream timeout", flag SI, well before the route timeout.
func TestStreamIdleTimeout(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/stall":
			<-release
		case "/body-stall":
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, "part")
			w.(http.Flusher).Flush()
			<-release
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(release) })
	s := snapshotWith(t, up, pol("stream-idle-timeout-flex", 50, map[string]any{"timeout": 0.3}))
	if got := s.Listeners[0].APIs[0].Routes[0].StreamIdleTimeout; got != 300*time.Millisecond {
		t.Fatalf("Shape set Route.StreamIdleTimeout %v", got)
	}
	sk := &sink{}
	base := start(t, s, nil, sk)

	if res := do(t, http.MethodGet, base+"/fast"); res.StatusCode != 200 {
		t.Fatalf("active request: %d", res.StatusCode)
	}
	res, err := http.Get(base + "/stall")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), "stream timeout") {
		t.Fatalf("stalled upstream: %d %s", res.StatusCode, body)
	}

	// A response body that stops arriving is cut (the route's stream idle
	// timeout bounds each wait), long before the 15 s route timeout.
	start := time.Now()
	res, err = http.Get(base + "/body-stall")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(res.Body)
	res.Body.Close()
	if err == nil {
		t.Fatal("stalled response body read to the end")
	}
	if waited := time.Since(start); waited >= 15*time.Second {
		t.Fatalf("stalled body cut by the route timeout (%v), not the stream idle timeout", waited)
	}

	// A client that sends half its body and goes quiet.
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\nhalf")
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second)) // far above the idle timeout; only guards a hang
	r, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to an idle upload: %v", err)
	}
	if r.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("idle upload: %d", r.StatusCode)
	}
	deadline := time.Now().Add(10 * time.Second)
	for sk.count(func(r accesslog.Record) bool { return strings.Contains(r.ResponseFlags, "SI") }) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("access log has no SI records")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// idle-timeout-flex: a pooled upstream connection idle longer than the
// timeout is not reused; without the policy it is.
func TestUpstreamIdleTimeout(t *testing.T) {
	for _, c := range []struct {
		name      string
		withIdle  bool
		wantConns int32
	}{{"policy", true, 2}, {"default", false, 1}} {
		t.Run(c.name, func(t *testing.T) {
			var conns atomic.Int32
			up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
			up.Config.ConnState = func(_ net.Conn, st http.ConnState) {
				if st == http.StateNew {
					conns.Add(1)
				}
			}
			up.Start()
			t.Cleanup(up.Close)
			var s = snapshotWith(t, up)
			if c.withIdle {
				s = snapshotWith(t, up, pol("idle-timeout-flex", 50, map[string]any{"timeout": 0.2}))
				if got := s.Services[0].IdleTimeout; got != 200*time.Millisecond {
					t.Fatalf("Shape set Service.IdleTimeout %v", got)
				}
			}
			base := start(t, s, nil, nil)
			do(t, http.MethodGet, base+"/a")
			// Elapsed time is the subject: more of it cannot change the outcome.
			time.Sleep(400 * time.Millisecond)
			do(t, http.MethodGet, base+"/b")
			if got := conns.Load(); got != c.wantConns {
				t.Fatalf("upstream connections %d, want %d", got, c.wantConns)
			}
		})
	}
}
