package dataplane

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"testing"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/ir"
)

// TestSecurityTLSOnH1Server: HTTPS listeners terminate TLS on the h1
// server. HTTP/1.1 over TLS keeps its connection alive and tells policies
// the request came over TLS (attributes.scheme reads r.TLS); a client that
// opens a connection and never completes the handshake is cut off after
// ReadHeaderTimeout instead of holding the connection; a required client
// certificate is enforced before any request is read; h2 chosen by ALPN
// still goes to the HTTP/2 server.
func TestSecurityTLSOnH1Server(t *testing.T) {
	up := echoUpstream(t, "up")
	certPEM, keyPEM, pool := selfSigned(t)
	raw, _ := json.Marshal(map[string]any{"inboundHeaders": []map[string]string{{"key": "x-scheme", "value": "#[attributes.scheme]"}}})
	a := api("api", "/", catchAll("r", "up"))
	a.Policies = []*ir.Policy{{Name: "header-injection-flex", Binding: "default/inject", Order: 1, Config: raw}}
	mtls := api("mtls", "/", catchAll("r", "up"))
	s := &ir.Snapshot{
		Version: 1,
		Listeners: []*ir.Listener{
			{Name: "https", Protocol: ir.HTTPS, Host: "127.0.0.1", Port: 0, TLS: &ir.ServerTLS{CertPEM: certPEM, KeyPEM: keyPEM}, APIs: []*ir.API{a}},
			{Name: "mtls", Protocol: ir.HTTPS, Host: "127.0.0.2", Port: 0, TLS: &ir.ServerTLS{CertPEM: certPEM, KeyPEM: keyPEM, ClientCAPEM: certPEM, RequireClientCert: true}, APIs: []*ir.API{mtls}},
		},
		Services: []*ir.Service{svc("up", endpointOf(t, up))},
	}
	g := startGateway(t, s, func(o *Options) { o.ReadHeaderTimeout = 500 * time.Millisecond })
	addr, mtlsAddr := g.dp.Addr("127.0.0.1:0"), g.dp.Addr("127.0.0.2:0")

	t.Run("HTTP/1.1 keep-alive", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr}
		reused := 0
		for i := 0; i < 3; i++ {
			req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/x", nil)
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
				GotConn: func(ci httptrace.GotConnInfo) {
					if ci.Reused {
						reused++
					}
				},
			}))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.ProtoMajor != 1 {
				t.Fatalf("status %d over %s", resp.StatusCode, resp.Proto)
			}
			e := decodeEcho(t, string(body))
			if e.Header.Get("X-Scheme") != "https" || e.Header.Get("X-Forwarded-Proto") != "https" {
				t.Fatalf("upstream saw scheme %q, X-Forwarded-Proto %q", e.Header.Get("X-Scheme"), e.Header.Get("X-Forwarded-Proto"))
			}
			id := e.Header.Get("X-Request-Id")
			if rec := g.sink.waitRecord(t, func(r accesslog.Record) bool { return r.RequestID == id }); rec.Protocol != "HTTP/1.1" {
				t.Errorf("access log protocol %q", rec.Protocol)
			}
		}
		if reused != 2 {
			t.Errorf("%d of 3 requests reused the connection, want 2", reused)
		}
	})

	t.Run("silent connection", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("the gateway wrote to a client that sent no ClientHello")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("a connection that never handshakes was kept open")
		}
	})

	t.Run("client certificate required", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("https://" + mtlsAddr + "/x")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("served %d without a client certificate", resp.StatusCode)
		}
	})

	t.Run("h2 by ALPN", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, body := get(t, &http.Client{Transport: tr}, "https://"+addr+"/x")
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
			t.Fatalf("status %d over %s", resp.StatusCode, resp.Proto)
		}
		if e := decodeEcho(t, body); e.Header.Get("X-Scheme") != "https" {
			t.Errorf("upstream saw scheme %q over h2", e.Header.Get("X-Scheme"))
		}
	})
}
