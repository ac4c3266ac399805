package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/testutil"
)

// selfSigned returns a PEM certificate and key for 127.0.0.1 and localhost;
// rsaKey selects an RSA key (needed by the TLS_RSA_* suites).
func selfSigned(t *testing.T, rsaKey bool) (certPEM, keyPEM string) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	var pub, priv any
	if rsaKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		pub, priv = &k.PublicKey, k
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub, priv = &k.PublicKey, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}

var blockPlaceholder = regexp.MustCompile(`\{\{(CERT|KEY):(\d+)\}\}`)

// renderFixture fills a fixture's placeholders (see testdata/agreement/README.md).
func renderFixture(t *testing.T, src string, port int, upstream, cert, key string) string {
	t.Helper()
	src = strings.ReplaceAll(src, "{{PORT}}", strconv.Itoa(port))
	src = strings.ReplaceAll(src, "{{UPSTREAM}}", upstream)
	return blockPlaceholder.ReplaceAllStringFunc(src, func(m string) string {
		p := blockPlaceholder.FindStringSubmatch(m)
		n, _ := strconv.Atoi(p[2])
		text := cert
		if p[1] == "KEY" {
			text = key
		}
		pad := strings.Repeat(" ", n)
		return pad + strings.ReplaceAll(strings.TrimRight(text, "\n"), "\n", "\n"+pad)
	})
}

// runServes runs `flexgw run` on dir and reports whether it came up
// serving (then it is stopped) or exited, with its output.
func runServes(t *testing.T, dir string) (bool, string) {
	t.Helper()
	cmd := exec.Command(flexgwBin, "run", "--config", dir, "--admin", "127.0.0.1:0",
		"--access-log", filepath.Join(t.TempDir(), "access.log"), "--state-dir", t.TempDir(),
		"--dataplane", "builtin", "--ebpf", "off", "--drain-timeout", "1s")
	var out testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() { _ = cmd.Process.Kill(); <-exited }()
	deadline := time.After(60 * time.Second)
	for {
		if strings.Contains(out.String(), "msg=serving") {
			return true, out.String()
		}
		select {
		case <-exited:
			return strings.Contains(out.String(), "msg=serving"), out.String()
		case <-deadline:
			t.Fatalf("flexgw run neither served nor exited within 60s:\n%s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestValidateAndRunAgree: on every fixture of testdata/agreement, `flexgw
// validate` accepts exactly when `flexgw run` serves. One compile step
// decides both; this keeps it so.
func TestValidateAndRunAgree(t *testing.T) {
	fixtures, _ := filepath.Glob("testdata/agreement/*.yaml")
	if len(fixtures) == 0 {
		t.Fatal("no fixtures")
	}
	up := startUpstream(t, "up", nil)
	rsaCert, rsaKey := selfSigned(t, true)
	want := map[string]bool{ // what Flex does with each (documented in the fixture)
		"tls-flex-ciphers": true, "https-without-tls": false, "tls-psk-cipher": false,
		"tls-outbound-ciphers": true, "tls-bad-certificate": false, "plain-http": true,
		"header-injection-outbound-expression": true, "spec-validation-context-source": false, "aws-lambda-inline-credentials": true,
	}
	for _, f := range fixtures {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			port := freePort(t)
			dir := writeConfig(t, map[string]string{"conf.yaml": renderFixture(t, string(src), port, up.URL, rsaCert, rsaKey)})
			vout, verr := exec.Command(flexgwBin, "validate", dir).CombinedOutput()
			valid := verr == nil
			served, rout := runServes(t, dir)
			if valid != served {
				t.Fatalf("validate valid=%v but run served=%v\nvalidate:\n%s\nrun:\n%s", valid, served, vout, rout)
			}
			if w, ok := want[name]; ok && w != valid {
				t.Errorf("accepted=%v, want %v\n%s", valid, w, vout)
			}
			if !valid && !bytes.Contains(vout, []byte(filepath.Join(dir, "conf.yaml"))) {
				t.Errorf("validate's error does not name the file:\n%s", vout)
			}
		})
	}
}

// The TLS_RSA_* suites of Flex's example are served: a client that offers
// only TLS_RSA_WITH_AES_128_GCM_SHA256 completes the handshake.
func TestFlexCipherListServes(t *testing.T) {
	up := startUpstream(t, "up", nil)
	cert, key := selfSigned(t, true)
	src, err := os.ReadFile("testdata/agreement/tls-flex-ciphers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	startGateway(t, writeConfig(t, map[string]string{"conf.yaml": renderFixture(t, string(src), port, up.URL, cert, key)}))
	for _, suite := range []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA} {
		c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{
			InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite},
		})
		if err != nil {
			t.Errorf("handshake offering only %s: %v", tls.CipherSuiteName(suite), err)
			continue
		}
		if got := c.ConnectionState().CipherSuite; got != suite {
			t.Errorf("negotiated %s, want %s", tls.CipherSuiteName(got), tls.CipherSuiteName(suite))
		}
		c.Close()
	}
	// A suite not in the list is refused.
	if c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{
		InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256},
	}); err == nil {
		c.Close()
		t.Error("a suite outside the configured list was negotiated")
	}
}

// testutil.SyncBuffer is a bytes.Buffer safe for the process's writes and the
// test's reads.
// Flex's default ipExpression reads X-Forwarded-For, which any client can
// write: validate accepts the config and warns with the fix; run logs the
// same warning at start-up, and the policy means what Flex documents.
func TestIPAllowlistDefaultWarns(t *testing.T) {
	up := startUpstream(t, "up", nil)
	port := freePort(t)
	dir := writeConfig(t, map[string]string{"api.yaml": fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: internal
spec:
  address: http://127.0.0.1:%d
  services:
    upstream:
      address: %s
  policies:
    - policyRef:
        name: ip-allowlist-flex
      config:
        ips:
          - 192.168.3.1
          - 10.0.0.0/16
`, port, up.URL)})
	out, err := exec.Command(flexgwBin, "validate", dir).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("warning: ")) || !bytes.Contains(out, []byte("trustedProxies")) {
		t.Fatalf("validate: err=%v, want success with a warning naming trustedProxies:\n%s", err, out)
	}
	g := startGateway(t, dir)
	eventually(t, 20*time.Second, func() string {
		if !strings.Contains(g.logs(), "config warning") {
			return "run did not log the warning:\n" + g.logs()
		}
		return ""
	})
	if code, _, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/", port), "X-Forwarded-For", "10.0.4.4, 127.0.0.1"); code != 200 {
		t.Errorf("X-Forwarded-For 10.0.4.4 (allowlisted): status %d, want 200 as Flex", code)
	}
	if code, _, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); code != 403 {
		t.Errorf("no X-Forwarded-For, peer 127.0.0.1: status %d, want 403", code)
	}
}
