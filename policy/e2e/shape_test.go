package e2e_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/ir"
)

type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM string
	pool    *x509.CertPool
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "flexgw test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &testCA{cert: c, key: k, pool: pool, certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

var serial atomic.Int64

// issue returns a leaf certificate and key (PEM) for 127.0.0.1.
func (ca *testCA) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) (string, string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial.Add(1) + 1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(k)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}))
}

// The tls policy gives the listener TLS with required client certificates.
func TestInboundMTLSFromTLSPolicy(t *testing.T) {
	ca := newCA(t)
	srvCrt, srvKey := ca.issue(t, "gateway", x509.ExtKeyUsageServerAuth)
	cliCrt, cliKey := ca.issue(t, "client", x509.ExtKeyUsageClientAuth)
	up, _ := upstream(t)
	s := load(t, testutil.APIInstance("api", listen(t, "https"), up.URL, pol("tls", 0, map[string]any{
		"certificate": map[string]string{"crt": srvCrt, "key": srvKey}, "trustedCA": ca.certPEM, "requireClientCertificate": true})))
	if s.Listeners[0].Protocol != ir.HTTPS || s.Listeners[0].TLS == nil {
		t.Fatal("Shape did not set the listener's TLS")
	}
	base := start(t, s, nil, nil)
	addr := base[len("http://"):]

	pair, err := tls.X509KeyPair([]byte(cliCrt), []byte(cliKey))
	if err != nil {
		t.Fatal(err)
	}
	withCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{pair}}}}
	res, err := withCert.Get("https://" + addr + "/x")
	if err != nil {
		t.Fatalf("client with certificate: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
	if res, err := noCert.Get("https://" + addr + "/x"); err == nil {
		res.Body.Close()
		t.Fatalf("client without certificate got %d, want a handshake failure", res.StatusCode)
	}
}

func tlsUpstream(t *testing.T, ca *testCA) *httptest.Server {
	crt, key := ca.issue(t, "upstream", x509.ExtKeyUsageServerAuth)
	pair, err := tls.X509KeyPair([]byte(crt), []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "tls ok") }))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// tls-outbound on the Service makes the data plane verify the upstream
// against the configured CA.
func TestOutboundTLSFromTLSOutboundPolicy(t *testing.T) {
	ca := newCA(t)
	up := tlsUpstream(t, ca)
	for _, tc := range []struct {
		name string
		cfg  map[string]any
		want int
	}{
		{"trusted CA", map[string]any{"skipValidation": false, "trustedCA": ca.certPEM}, http.StatusOK},
		{"unknown CA", map[string]any{"skipValidation": false, "trustedCA": newCA(t).certPEM}, http.StatusBadGateway},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := load(t, testutil.Resource{Kind: "ApiInstance", Name: "api", Spec: "address: " + listen(t, "http") + "\n"},
				testutil.Service("up", up.URL), testutil.Route("api", "up"),
				testutil.Binding("up-tls", "Service", "up", pol("tls-outbound", 0, tc.cfg)))
			if s.Services[0].Protocol != ir.HTTPS || s.Services[0].TLS == nil || s.Services[0].TLS.CAPEM == "" {
				t.Fatal("Shape did not set the service's TLS")
			}
			base := start(t, s, nil, nil)
			if res := do(t, http.MethodGet, base+"/x"); res.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.want)
			}
		})
	}
}

// response-timeout-flex bounds the upstream exchange (504), and
// circuit-breaker-flex caps concurrent requests to the service (503).
func TestResponseTimeoutAndCircuitBreaker(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	var held atomic.Int32 // /hold requests that reached the upstream
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			held.Add(1)
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)

	s := snapshotWith(t, slow, pol("response-timeout-flex", 0, map[string]any{"timeout": 0.3}))
	if got := s.Listeners[0].APIs[0].Routes[0].Timeout; got != 300*time.Millisecond {
		t.Fatalf("route timeout %v", got)
	}
	base := start(t, s, nil, nil)
	if res := do(t, http.MethodGet, base+"/x"); res.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("slow upstream: %d, want 504", res.StatusCode)
	}

	s2 := load(t, testutil.Resource{Kind: "ApiInstance", Name: "api", Spec: "address: " + listen(t, "http") + "\n"},
		testutil.Service("up", slow.URL), testutil.Route("api", "up"),
		testutil.Binding("up-breaker", "Service", "up", pol("circuit-breaker-flex", 0, map[string]any{"thresholds": map[string]int{"maxRequests": 1}})))
	base2 := start(t, s2, nil, nil)
	first := make(chan int, 1)
	go func() {
		res, err := http.Get(base2 + "/hold")
		if err != nil {
			first <- 0
			return
		}
		res.Body.Close()
		first <- res.StatusCode
	}()
	deadline := time.Now().Add(10 * time.Second)
	for held.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("first request never reached the upstream")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if res := do(t, http.MethodGet, base2+"/x"); res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second concurrent request: %d, want 503 from the circuit breaker", res.StatusCode)
	}
	// Released, the first request completes normally.
	unblock()
	if code := <-first; code != http.StatusOK {
		t.Fatalf("held request: %d, want 200", code)
	}
}
