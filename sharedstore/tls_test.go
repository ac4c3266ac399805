package sharedstore_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/sharedstore"
	"github.com/flexgw/flexgw/sharedstore/redistest"
)

func writePEM(t *testing.T, path, typ string, der []byte) string {
	t.Helper()
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A real redis-server speaking only TLS: the store connects when it
// trusts the server's CA and fails (counted, ErrUnavailable) otherwise.
func TestRedisTLS(t *testing.T) {
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redis test CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "redis"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(srvKey)
	caPEM := writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", caDER)
	writePEM(t, filepath.Join(dir, "cert.pem"), "CERTIFICATE", srvDER)
	writePEM(t, filepath.Join(dir, "key.pem"), "PRIVATE KEY", keyDER)

	srv := redistest.StartTLS(t, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem"))
	good, err := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr, TLS: &ir.RedisTLS{TrustedCA: caPEM, MinVersion: "1.2"}}, sharedstore.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if n, _, err := good.Incr(context.Background(), "tls", 60000); err != nil || n != 1 {
		t.Fatalf("over TLS: n=%d err=%v", n, err)
	}
	untrusted, _ := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr, TLS: &ir.RedisTLS{}}, sharedstore.RedisOptions{})
	defer untrusted.Close()
	if _, _, err := untrusted.Incr(context.Background(), "tls", 60000); !errors.Is(err, sharedstore.ErrUnavailable) {
		t.Fatalf("untrusted server certificate: %v, want ErrUnavailable", err)
	}
}
