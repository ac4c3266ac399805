package policy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

func selfSigned(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gw.test"}, DNSNames: []string{"gw.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(k)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}))
}

func shapeSnapshot(apiPolicies, svcPolicies []*ir.Policy) *ir.Snapshot {
	svc := &ir.Service{Name: "up", Namespace: "default", Policies: svcPolicies}
	route := &ir.Route{Name: "r", Destinations: []ir.Destination{{Service: "default/up", Weight: 100}}}
	api := &ir.API{Name: "api", Namespace: "default", BasePath: "/", Routes: []*ir.Route{route}, Policies: apiPolicies}
	return &ir.Snapshot{
		Listeners: []*ir.Listener{{Name: "https_0.0.0.0_8443", Protocol: ir.HTTPS, Port: 8443, APIs: []*ir.API{api}}},
		Services:  []*ir.Service{svc},
	}
}

func TestShape(t *testing.T) {
	crt, key := selfSigned(t)
	crt2, key2 := selfSigned(t)
	s := shapeSnapshot(
		[]*ir.Policy{
			policytest.Policy("tls", map[string]any{"certificate": map[string]string{"crt": crt, "key": key}, "requireClientCertificate": true, "trustedCA": crt, "minversion": "1.3",
				"sniCertificates": []map[string]string{{"crt": crt2, "key": key2}}}),
			policytest.Policy("response-timeout-flex", map[string]any{"timeout": 2.5}),
		},
		[]*ir.Policy{
			policytest.Policy("tls-outbound", map[string]any{"skipValidation": false, "trustedCA": crt, "sni": "up.internal", "certificate": map[string]string{"crt": crt, "key": key}}),
			policytest.Policy("circuit-breaker-flex", map[string]any{"thresholds": map[string]int{"maxConnections": 10, "maxRequests": 20}}),
		},
	)
	if err := policy.Shape(s); err != nil {
		t.Fatal(err)
	}
	l := s.Listeners[0]
	if l.TLS == nil || l.TLS.CertPEM != crt || !l.TLS.RequireClientCert || l.TLS.ClientCAPEM != crt || l.TLS.MinVersion != "1.3" || l.TLS.MaxVersion != "1.3" ||
		len(l.TLS.SNICerts) != 1 || l.TLS.SNICerts[0].CertPEM != crt2 || l.TLS.SNICerts[0].KeyPEM != key2 {
		t.Fatalf("listener TLS %+v", l.TLS)
	}
	if got := l.APIs[0].Routes[0].Timeout; got != 2500*time.Millisecond {
		t.Fatalf("route timeout %v", got)
	}
	svc := s.Services[0]
	if svc.TLS == nil || svc.TLS.SNI != "up.internal" || svc.TLS.CAPEM != crt || svc.TLS.KeyPEM != key {
		t.Fatalf("service TLS %+v", svc.TLS)
	}
	if svc.CircuitBreaker == nil || svc.CircuitBreaker.MaxConnections != 10 || svc.CircuitBreaker.MaxRequests != 20 {
		t.Fatalf("circuit breaker %+v", svc.CircuitBreaker)
	}
}

func TestShapeErrors(t *testing.T) {
	crt, key := selfSigned(t)
	for name, tc := range map[string]struct {
		api, svc []*ir.Policy
		want     string
	}{
		"mtls without CA": {api: []*ir.Policy{policytest.Policy("tls", map[string]any{"certificate": map[string]string{"crt": crt, "key": key}, "requireClientCertificate": true})}, want: "config.trustedCA"},
		"bad sni cert":    {api: []*ir.Policy{policytest.Policy("tls", map[string]any{"certificate": map[string]string{"crt": crt, "key": key}, "sniCertificates": []map[string]string{{"crt": crt, "key": "y"}}})}, want: "config.sniCertificates[0]: "},
		"bad cert":        {api: []*ir.Policy{policytest.Policy("tls", map[string]any{"certificate": map[string]string{"crt": "x", "key": "y"}})}, want: "config.certificate"},
		"bad version":     {api: []*ir.Policy{policytest.Policy("tls", map[string]any{"certificate": map[string]string{"crt": crt, "key": key}, "minversion": "1.4"})}, want: "config.minversion"},
		"bad cipher":      {svc: []*ir.Policy{policytest.Policy("tls-outbound", map[string]any{"ciphers": []string{"RC4"}})}, want: "config.ciphers[0]"},
		"zero timeout":    {api: []*ir.Policy{policytest.Policy("response-timeout-flex", map[string]any{"timeout": 0})}, want: "config.timeout"},
		"bad breaker":     {svc: []*ir.Policy{policytest.Policy("circuit-breaker-flex", map[string]any{"thresholds": map[string]int{"maxRequests": -1}})}, want: "config.thresholds.maxRequests"},
		"tls on service":  {svc: []*ir.Policy{policytest.Policy("tls", map[string]any{"certificate": map[string]string{"crt": crt, "key": key}})}, want: "binds to an ApiInstance"},
	} {
		err := policy.Shape(shapeSnapshot(tc.api, tc.svc))
		if err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, tc.want)
		}
	}
}

func TestShapingPoliciesAreKnownAndPassThrough(t *testing.T) {
	for _, n := range []string{"tls", "tls-outbound", "response-timeout-flex", "circuit-breaker-flex"} {
		if !policy.IsShaping(n) {
			t.Errorf("%s not shaping", n)
		}
		if _, ok := policy.Lookup(n); !ok {
			t.Errorf("%s not registered", n)
		}
	}
	if policy.IsShaping("cors-flex") {
		t.Error("cors-flex is not shaping")
	}
}
