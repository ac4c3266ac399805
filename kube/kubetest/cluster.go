// Package kubetest starts a real Kubernetes control plane for tests: etcd
// and kube-apiserver (no kubelet, scheduler or controllers, so pods never
// run), on free loopback ports with temporary directories, torn down by
// t.Cleanup. The binaries come from scripts/k8s-tools.sh's cache, which
// `make test` fills before the tests run.
package kubetest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Version is the Kubernetes version the tests run against.
const Version = "v1.37.2"

// ToolsDir is where scripts/k8s-tools.sh caches kube-apiserver, kubectl,
// helm and the etcd link: $FLEXGW_K8S_CACHE/VERSION, default
// /var/cache/flexgw-k8s/VERSION.
func ToolsDir() string {
	root := os.Getenv("FLEXGW_K8S_CACHE")
	if root == "" {
		root = "/var/cache/flexgw-k8s"
	}
	return filepath.Join(root, Version)
}

// Tool returns the path of a cached binary, failing the test (not skipping
// it: `make test` builds them) when it is missing.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(ToolsDir(), name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s missing (%v): run scripts/k8s-tools.sh, which `make test` runs first", name, err)
	}
	return p
}

// Cluster is a running etcd + kube-apiserver.
type Cluster struct {
	// URL is the API server's https://127.0.0.1:PORT.
	URL string
	// Kubeconfig is a kubeconfig file for an admin user (system:masters).
	Kubeconfig string
	// AdminToken is the admin's bearer token; CAFile verifies the server.
	AdminToken string
	CAFile     string
	// Dir is the cluster's temporary directory.
	Dir string
	// Started is how long etcd and the API server took to become ready.
	Started time.Duration

	tokens string
	mu     sync.Mutex
}

// Start runs etcd and kube-apiserver and waits until /readyz answers. The
// admin user is in system:masters; AddUser adds token users RBAC governs.
func Start(t testing.TB) *Cluster {
	t.Helper()
	begin := time.Now()
	dir := t.TempDir()
	c := &Cluster{Dir: dir, AdminToken: randHex(t), tokens: filepath.Join(dir, "tokens.csv")}
	if err := os.WriteFile(c.tokens, []byte(c.AdminToken+",admin,admin,system:masters\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	etcdClient, etcdPeer := freePort(t), freePort(t)
	etcdURL := "http://127.0.0.1:" + etcdClient
	etcdDone := start(t, "etcd", filepath.Join(dir, "etcd.log"), Tool(t, "etcd"),
		"--name", "default", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:"+etcdPeer,
		"--initial-advertise-peer-urls", "http://127.0.0.1:"+etcdPeer,
		"--initial-cluster", "default=http://127.0.0.1:"+etcdPeer,
		"--log-level", "warn")

	c.CAFile = filepath.Join(dir, "serving.crt")
	keyFile := filepath.Join(dir, "serving.key")
	writeServingCert(t, c.CAFile, keyFile)
	saKey := filepath.Join(dir, "sa.key")
	writeRSAKey(t, saKey)
	// The port is free when chosen, but another process (tests run in
	// parallel) may bind it first: then the API server exits at once and
	// gets another port.
	for attempt := 0; ; attempt++ {
		ready := func() bool {
			port := freePort(t)
			c.URL = "https://127.0.0.1:" + port
			apiDone := start(t, "kube-apiserver", filepath.Join(dir, "apiserver.log"), Tool(t, "kube-apiserver"),
				"--etcd-servers", etcdURL,
				"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", port,
				"--tls-cert-file", c.CAFile, "--tls-private-key-file", keyFile,
				"--cert-dir", filepath.Join(dir, "certs"),
				"--token-auth-file", c.tokens,
				"--authorization-mode", "RBAC",
				"--service-cluster-ip-range", "10.0.0.0/24",
				"--service-account-issuer", "https://kubernetes.default.svc",
				"--service-account-key-file", saKey, "--service-account-signing-key-file", saKey,
				// No controller-manager mints service account tokens here.
				"--disable-admission-plugins", "ServiceAccount",
				"--allow-privileged=true",
				// The default reconciler refuses a loopback advertise address; no
				// pod reaches the API server through the kubernetes Service here.
				"--endpoint-reconciler-type", "none",
				"--v", "0")

			c.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
			c.writeKubeconfig(t, c.Kubeconfig, "admin", c.AdminToken)
			return !c.waitReady(t, etcdDone, apiDone, attempt < 2)
		}()
		if ready {
			break
		}
		t.Logf("kube-apiserver's port was taken; trying another")
	}
	c.Started = time.Since(begin)
	t.Logf("kube-apiserver %s ready at %s in %v (logs in %s)", Version, c.URL, c.Started.Round(time.Millisecond), dir)
	return c
}

// writeKubeconfig writes a kubeconfig for a bearer-token user.
func (c *Cluster) writeKubeconfig(t testing.TB, path, user, token string) {
	t.Helper()
	ca, err := os.ReadFile(c.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: %s, namespace: default}
current-context: test
`, c.URL, b64(ca), user, token, user)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// KubeconfigFor writes a kubeconfig that authenticates with a service
// account token the test obtained (TokenRequest), so RBAC applies to it.
func (c *Cluster) KubeconfigFor(t testing.TB, user, token string) string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	path := filepath.Join(c.Dir, user+".kubeconfig")
	c.writeKubeconfig(t, path, user, token)
	return path
}

// waitReady polls /readyz until it answers 200, failing at once (with the
// log's tail) when etcd or the API server exits.
// With retry, an API server that exits because its port is taken is not
// a failure: waitReady returns true for the caller to pick another port.
func (c *Cluster) waitReady(t testing.TB, etcdDone, apiDone <-chan struct{}, retry bool) (portTaken bool) {
	t.Helper()
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(c.CAFile)
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var last string
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", c.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+c.AdminToken)
		resp, err := client.Do(req)
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b.String())
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
		case <-etcdDone:
			t.Fatalf("etcd exited:\n%s", c.logTail("etcd.log"))
		case <-apiDone:
			log := c.logTail("apiserver.log")
			if retry && strings.Contains(log, "address already in use") {
				return true
			}
			t.Fatalf("kube-apiserver exited:\n%s", log)
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Fatalf("kube-apiserver not ready: %s\n%s", last, c.logTail("apiserver.log"))
	return false
}

func (c *Cluster) logTail(name string) string {
	log, _ := os.ReadFile(filepath.Join(c.Dir, name))
	if len(log) > 4000 {
		log = log[len(log)-4000:]
	}
	return string(log)
}

// start runs a process with its output in logFile and stops it (SIGTERM,
// then SIGKILL) at cleanup. The channel closes when the process exits.
func start(t testing.TB, name, logFile, bin string, args ...string) <-chan struct{} {
	t.Helper()
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	return done
}

// FreePort returns a loopback port nothing listens on right now.
func FreePort(t testing.TB) int {
	p, _ := strconv.Atoi(freePort(t))
	return p
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func writeServingCert(t testing.TB, certFile, keyFile string) {
	t.Helper()
	cert, key := SelfSigned(t, "kube-apiserver (flexgw test)")
	for f, b := range map[string]string{certFile: cert, keyFile: key} {
		if err := os.WriteFile(f, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// SelfSigned returns a new self-signed CA certificate for 127.0.0.1 and
// localhost, and its key, PEM-encoded; cn tells certificates apart.
func SelfSigned(t testing.TB, cn string) (certPEM, keyPEM string) {
	t.Helper()
	return SelfSignedFor(t, cn, "localhost")
}

// SelfSignedFor is SelfSigned for the DNS names given (and 127.0.0.1): a
// TLS server holding several picks it by the client's SNI.
func SelfSignedFor(t testing.TB, cn string, dnsNames ...string) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              dnsNames,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

func writeRSAKey(t testing.TB, path string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, path, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func randHex(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

func b64(b []byte) string {
	return base64.StdEncoding.EncodeToString(b)
}

// HostIP is the machine's first non-loopback IPv4 address. EndpointSlices
// may not point at loopback, so a backend that stands in for a pod (no
// kubelet runs pods here) listens on it.
func HostIP(t testing.TB) string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				return n.IP.String()
			}
		}
	}
	t.Fatal("no non-loopback IPv4 address on this machine: EndpointSlices cannot point at loopback")
	return ""
}
