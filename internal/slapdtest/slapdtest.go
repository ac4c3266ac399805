// Package slapdtest starts a real OpenLDAP server (Debian's slapd,
// installed by scripts/deps.sh) for tests: its own instance with a
// generated slapd.conf and an mdb database in a temp dir, on a free
// loopback port, never the system's. Entries are loaded with ldapadd
// (ldap-utils). The root DN is cn=admin,<Suffix> with password "admin".
package slapdtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// slapd is a real OpenLDAP server (Debian's slapd, installed by
// scripts/deps.sh) the test starts as its own instance: a generated
// slapd.conf and an mdb database in a temp dir, listening on a free
// loopback port, entries loaded with ldapadd (ldap-utils).
type Server struct {
	// URL is ldap://127.0.0.1:<port>.
	URL string
	// TLSURL is ldaps://127.0.0.1:<port> when started with StartTLS.
	TLSURL string
}

// Suffix is the directory's base DN.
const Suffix = "dc=example,dc=org"

func slapdBin(t testing.TB, name string) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/" + name, "/usr/bin/" + name} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Fatalf("%s not installed: run scripts/deps.sh (packages slapd, ldap-utils)", name)
	return ""
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start runs slapd until t ends and loads ldif (which must create Suffix).
func Start(t testing.TB, ldif string) *Server { return start(t, ldif, "", "") }

// StartTLS is Start with an ldaps:// listener too, serving the PEM
// certificate and key given (for 127.0.0.1).
func StartTLS(t testing.TB, ldif, certPEM, keyPEM string) *Server {
	return start(t, ldif, certPEM, keyPEM)
}

func start(t testing.TB, ldif, certPEM, keyPEM string) *Server {
	t.Helper()
	bin, ldapadd := slapdBin(t, "slapd"), slapdBin(t, "ldapadd")
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 16777216
suffix "%[2]s"
rootdn "cn=admin,%[2]s"
rootpw admin
directory %[1]s/data
access to attrs=userPassword by anonymous auth by * none
access to * by * read
`, dir, Suffix)
	if certPEM != "" {
		for name, content := range map[string]string{"cert.pem": certPEM, "key.pem": keyPEM} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// TLS directives are global: they go before the database section.
		conf = fmt.Sprintf("TLSCertificateFile %[1]s/cert.pem\nTLSCertificateKeyFile %[1]s/key.pem\n", dir) + conf
	}
	confPath := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var url, tlsURL string
	var cmd *exec.Cmd
	var stderr bytes.Buffer
	// A port picked free may be taken before slapd binds it: try again.
	for attempt := 0; ; attempt++ {
		url = fmt.Sprintf("ldap://127.0.0.1:%d", freePort(t))
		listen := url + "/"
		if certPEM != "" {
			tlsURL = fmt.Sprintf("ldaps://127.0.0.1:%d", freePort(t))
			listen += " " + tlsURL + "/"
		}
		stderr.Reset()
		// -d 0: stay in the foreground (the test owns the process), log nothing.
		cmd = exec.Command(bin, "-f", confPath, "-h", listen, "-d", "0")
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		ready := waitLDAP(url, exited)
		if ready == nil {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			break
		}
		_ = cmd.Process.Kill()
		if attempt == 3 {
			t.Fatalf("slapd did not start: %v\n%s", ready, stderr.String())
		}
	}
	add := exec.Command(ldapadd, "-x", "-H", url, "-D", "cn=admin,"+Suffix, "-w", "admin")
	add.Stdin = strings.NewReader(ldif)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ldapadd: %v\n%s", err, out)
	}
	if tlsURL != "" {
		if err := waitLDAP("ldap://"+strings.TrimPrefix(tlsURL, "ldaps://"), nil); err != nil {
			t.Fatalf("slapd's ldaps listener: %v", err)
		}
	}
	return &Server{URL: url, TLSURL: tlsURL}
}

// waitLDAP waits until something accepts connections at url, or slapd exits.
func waitLDAP(url string, exited <-chan error) error {
	addr := strings.TrimPrefix(url, "ldap://")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("slapd exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("slapd exited: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
