package dataplane

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/ir"
)

// rawUpstream answers every request on a keep-alive connection with a
// fixed small response, allocating nothing per request, so benchmarks
// measure the proxy.
func rawUpstream(b *testing.B) ir.Endpoint {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\nhello, world\n")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReaderSize(c, 8192)
				for {
					// Read the head up to the blank line (requests have no body).
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	a := ln.Addr().(*net.TCPAddr)
	return ir.Endpoint{Host: "127.0.0.1", Port: a.Port}
}

// discardWriter is a reusable http.ResponseWriter.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(s int)           { d.status = s }
func (d *discardWriter) Write(b []byte) (int, error) { d.n += len(b); return len(b), nil }

// BenchmarkServeHTTP measures the proxy's own request path (routing, the
// upstream exchange over a pooled connection, relaying) without the
// net/http server in front: allocs/op are the data plane's.
func BenchmarkServeHTTP(b *testing.B) {
	ep := rawUpstream(b)
	s := &ir.Snapshot{
		Version:   1,
		Listeners: []*ir.Listener{{Name: "bench", Protocol: ir.HTTP, Host: "127.0.0.1", Port: 0, APIs: []*ir.API{{Name: "api", Namespace: "default", BasePath: "/", Routes: []*ir.Route{{Name: "r", Destinations: []ir.Destination{{Service: "default/up", Weight: 100}}}}}}}},
		Services:  []*ir.Service{{Name: "up", Namespace: "default", Protocol: ir.HTTP, Endpoints: []ir.Endpoint{ep}, LB: ir.RoundRobin}},
	}
	dp := New(Options{Logger: testLoggerB()})
	if err := dp.Apply(s); err != nil {
		b.Fatal(err)
	}
	defer dp.Shutdown(b.Context())
	h := &lnHandler{dp: dp, addr: "127.0.0.1:0", name: "bench", scheme: "http"}
	req, _ := http.NewRequest("GET", "http://gw/items/42?x=1", nil)
	req.RemoteAddr = "127.0.0.1:5555"
	req.RequestURI = "/items/42?x=1"
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "*/*")
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		clear(w.h)
		h.ServeHTTP(w, req)
		if w.status != 200 {
			b.Fatalf("status %d", w.status)
		}
	}
}

// benchChains are the policy chains BenchmarkEndToEnd runs: none, a
// per-replica rate limit alone, and a realistic chain (JWT validation,
// a local rate limit, header injection), as issue 16 measures them.
func benchChains(b *testing.B) []struct {
	name   string
	pols   []*ir.Policy
	header string
} {
	secret := "0123456789abcdef0123456789abcdef"
	tok := testutil.HS256Token(b, secret, map[string]any{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	pol := func(name string, order int, cfg any) *ir.Policy {
		raw, err := json.Marshal(cfg)
		if err != nil {
			b.Fatal(err)
		}
		return &ir.Policy{Name: name, Binding: "default/" + name + "-" + b.Name(), Order: order, Config: raw}
	}
	limit := map[string]any{"rateLimits": []map[string]any{{"maximumRequests": 1 << 40, "timePeriodInMilliseconds": 3600000}}, "clusterizable": false}
	return []struct {
		name   string
		pols   []*ir.Policy
		header string
	}{
		{"no-policy", nil, ""},
		{"rate-limit-local", []*ir.Policy{pol("rate-limiting-flex", 1, limit)}, ""},
		{"jwt+rate-limit+header-injection", []*ir.Policy{
			pol("jwt-validation-flex", 1, map[string]any{"signingMethod": "hmac", "textKey": secret}),
			pol("rate-limiting-flex", 2, limit),
			pol("header-injection-flex", 3, map[string]any{"inboundHeaders": []map[string]string{{"key": "x-gw", "value": "flexgw"}}}),
		}, "Authorization: Bearer " + tok + "\r\n"},
	}
}

// BenchmarkEndToEnd drives the full path (the h1 server included) with
// parallel keep-alive clients writing raw requests, with no policy and
// with policy chains.
func BenchmarkEndToEnd(b *testing.B) {
	ep := rawUpstream(b)
	for _, c := range benchChains(b) {
		b.Run(c.name, func(b *testing.B) {
			api := &ir.API{Name: "api", Namespace: "default", BasePath: "/", Policies: c.pols, Routes: []*ir.Route{{Name: "r", Destinations: []ir.Destination{{Service: "default/up", Weight: 100}}}}}
			s := &ir.Snapshot{
				Version:   1,
				Listeners: []*ir.Listener{{Name: "bench", Protocol: ir.HTTP, Host: "127.0.0.1", Port: 0, APIs: []*ir.API{api}}},
				Services:  []*ir.Service{{Name: "up", Namespace: "default", Protocol: ir.HTTP, Endpoints: []ir.Endpoint{ep}, LB: ir.RoundRobin}},
			}
			dp := New(Options{Logger: testLoggerB()})
			if err := dp.Apply(s); err != nil {
				b.Fatal(err)
			}
			defer dp.Shutdown(b.Context())
			endToEnd(b, dp.Addr("127.0.0.1:0"), []byte("GET /items/42 HTTP/1.1\r\nHost: gw\r\nUser-Agent: bench\r\n"+c.header+"\r\n"))
		})
	}
}

func endToEnd(b *testing.B, addr string, reqBytes []byte) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for pb.Next() {
			if _, err := c.Write(reqBytes); err != nil {
				b.Error(err)
				return
			}
			n := -1
			status := ""
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					b.Error(err)
					return
				}
				if status == "" {
					status = string(line)
				}
				if len(line) <= 2 {
					break
				}
				if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
					n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
				}
			}
			if !strings.HasPrefix(status, "HTTP/1.1 200 ") {
				b.Errorf("status %q", status)
				return
			}
			if _, err := io.CopyN(io.Discard, br, int64(n)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
