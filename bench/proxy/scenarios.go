package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// scenario is one load shape, run against flexgw and its peer in the
// same round.
type scenario struct {
	name string
	// path on the upstream: "/" is the 13-byte body, "/b/1k" and
	// "/b/100k" static files.
	path string
	tls  bool
	h2   bool // HTTP/2 to the client (h2load over TLS, ALPN h2)
	// close sends Connection: close, so every request is a new
	// connection (a new TLS handshake with tls).
	close bool
	log   bool // access log to a file, on both
	// chain runs flexgw with a JWT + local rate limit + header injection
	// chain; its peer is then flexgw without policies, not nginx.
	chain bool
	// peer is "nginx" or "flexgw" (the chain scenarios).
	peer string
	// target is the goal for the flexgw/peer req/s ratio.
	target float64
}

var scenarios = []scenario{
	{name: "keepalive", path: "/", peer: "nginx", target: 1.0},
	{name: "keepalive+log", path: "/", log: true, peer: "nginx", target: 1.0},
	{name: "chain", path: "/", chain: true, peer: "flexgw", target: 0.9},
	{name: "conn-per-request", path: "/", close: true, peer: "nginx", target: 0.8},
	{name: "body-1k", path: "/b/1k", peer: "nginx", target: 1.0},
	{name: "body-100k", path: "/b/100k", peer: "nginx", target: 1.0},
	{name: "tls-keepalive", path: "/", tls: true, peer: "nginx", target: 1.0},
	{name: "tls-new-conn", path: "/", tls: true, close: true, peer: "nginx", target: 0.8},
	{name: "h2", path: "/", tls: true, h2: true, peer: "nginx", target: 1.0},
}

// certFiles writes a self-signed ECDSA P-256 certificate for 127.0.0.1
// (both proxies serve it: ECDHE key exchange, the same handshake cost).
func certFiles(dir string) (keyFile, crtFile string, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return "", "", err
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return "", "", err
	}
	keyFile, crtFile = filepath.Join(dir, "key.pem"), filepath.Join(dir, "crt.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(crtFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", err
	}
	return keyFile, crtFile, nil
}

// chainSecret signs the bench's JWT (HS256) and configures the policy.
const chainSecret = "0123456789abcdef0123456789abcdef"

// chainToken is an HS256 JWT valid for a day.
func chainToken() string {
	seg := func(v any) string { j, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(j) }
	in := seg(map[string]string{"alg": "HS256", "typ": "JWT"}) + "." +
		seg(map[string]any{"sub": "bench", "exp": time.Now().Add(24 * time.Hour).Unix()})
	m := hmac.New(sha256.New, []byte(chainSecret))
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// flexgwConfig is the Local Mode config of one flexgw run.
func flexgwConfig(sc scenario, port, upstreamPort int, keyFile, crtFile string) (string, error) {
	scheme := "http"
	var pols []string
	if sc.tls {
		scheme = "https"
		key, err := os.ReadFile(keyFile)
		if err != nil {
			return "", err
		}
		crt, err := os.ReadFile(crtFile)
		if err != nil {
			return "", err
		}
		pols = append(pols, fmt.Sprintf(`    - policyRef:
        name: tls
      config:
        certificate:
          key: |
%s
          crt: |
%s
        alpn: [h2, http/1.1]
`, indent(string(key), 12), indent(string(crt), 12)))
	}
	if sc.chain {
		pols = append(pols, fmt.Sprintf(`    - policyRef:
        name: jwt-validation-flex
      config:
        signingMethod: hmac
        textKey: %q
    - policyRef:
        name: rate-limiting-flex
      config:
        clusterizable: false
        rateLimits:
          - maximumRequests: 1000000000000
            timePeriodInMilliseconds: 3600000
    - policyRef:
        name: header-injection-flex
      config:
        inboundHeaders:
          - key: x-gateway
            value: flexgw
`, chainSecret))
	}
	cfg := fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: bench
spec:
  address: %s://127.0.0.1:%d
  services:
    upstream:
      address: http://127.0.0.1:%d
`, scheme, port, upstreamPort)
	if len(pols) > 0 {
		cfg += "  policies:\n" + strings.Join(pols, "")
	}
	return cfg, nil
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = pad + lines[i]
	}
	return strings.Join(lines, "\n")
}

// nginxProxyConfig is nginx doing what flexgw does in sc.
func nginxProxyConfig(sc scenario, port, upstreamPort int, keyFile, crtFile, logFile string) string {
	listen := fmt.Sprintf("listen 127.0.0.1:%d;", port)
	tls := ""
	if sc.tls {
		listen = fmt.Sprintf("listen 127.0.0.1:%d ssl http2;", port)
		tls = fmt.Sprintf(`
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_protocols TLSv1.2 TLSv1.3;`, crtFile, keyFile)
	}
	log := "access_log off;"
	if sc.log {
		// flexgw's file writer buffers up to 64 KiB and flushes within a
		// second: the same here.
		log = fmt.Sprintf("access_log %s combined buffer=64k flush=1s;", logFile)
	}
	return fmt.Sprintf(`
worker_processes auto;
events { worker_connections 4096; }
http {
  %s
  # Like flexgw, never close a busy client connection.
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:%d; keepalive 64; }
  server {
    %s%s
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}`, log, upstreamPort, listen, tls)
}
