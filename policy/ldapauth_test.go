package policy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/internal/slapdtest"
	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

// directory: jane at the search base's first level, paul one level
// further down, and two entries sharing a mail for the ambiguity test.
const directoryLDIF = `dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: uid=jane,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: jane
cn: Jane Doe
sn: Doe
mail: shared@example.org
userPassword: jane-secret

dn: ou=staff,ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: staff

dn: uid=paul,ou=staff,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: paul
cn: Paul Roe
sn: Roe
mail: shared@example.org
userPassword: paul-secret

dn: cn=search,dc=example,dc=org
objectClass: inetOrgPerson
cn: search
sn: service
userPassword: search-secret
`

func TestLDAPAuthentication(t *testing.T) {
	dir := slapdtest.Start(t, directoryLDIF)
	up := policytest.NewUpstream(t)
	cfg := func(subtree any, filter string) map[string]any {
		c := map[string]any{
			"ldapServerURL": dir.URL, "ldapServerUserDn": "cn=search," + slapdtest.Suffix, "ldapServerUserPassword": "search-secret",
			"ldapSearchBase": "ou=people," + slapdtest.Suffix,
		}
		if subtree != nil {
			c["ldapSearchInSubtree"] = subtree
		}
		if filter != "" {
			c["ldapSearchFilter"] = filter
		}
		return c
	}
	// One level (Flex's default): jane is found, paul (one level deeper) is not.
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("ldap-authentication-flex", cfg(nil, "")))
	policytest.WantStatus(t, g.Get(t, "/", basic("jane", "jane-secret")...), 200)
	policytest.WantStatus(t, g.Get(t, "/", basic("jane", "jane-secret")...), 200) // a pooled connection
	r := g.Get(t, "/", basic("jane", "wrong")...)
	policytest.WantStatus(t, r, 401)
	if r.Header.Get("WWW-Authenticate") != `Basic realm="mule-realm"` {
		t.Errorf("challenge %q, want Flex's", r.Header.Get("WWW-Authenticate"))
	}
	policytest.WantErrorBody(t, r, "ldap-authentication-flex")
	policytest.WantStatus(t, g.Get(t, "/", basic("paul", "paul-secret")...), 401)
	policytest.WantStatus(t, g.Get(t, "/"), 401)
	policytest.WantStatus(t, g.Get(t, "/", basic("nobody", "x")...), 401)

	// Attacks: filter injection matches no one (the username is escaped),
	// and an empty password is never an (unauthenticated) bind.
	for _, user := range []string{"*", "jane)(uid=*", "*)(|(uid=*"} {
		policytest.WantStatus(t, g.Get(t, "/", basic(user, "jane-secret")...), 401)
	}
	policytest.WantStatus(t, g.Get(t, "/", basic("jane", "")...), 401)
	if up.Hits() != 2 {
		t.Fatalf("upstream hits %d, want the 2 authenticated requests", up.Hits())
	}

	// Subtree (Flex's example quotes nothing; a quoted "true" works too).
	sub := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("ldap-authentication-flex", cfg("true", "")))
	policytest.WantStatus(t, sub.Get(t, "/", basic("paul", "paul-secret")...), 200)
	policytest.WantStatus(t, sub.Get(t, "/", basic("jane", "jane-secret")...), 200)
	// A filter matching two entries authenticates no one.
	amb := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("ldap-authentication-flex", cfg(true, "(mail={0})")))
	policytest.WantStatus(t, amb.Get(t, "/", basic("shared@example.org", "jane-secret")...), 401)

	// The service account's password wrong: 401 as Flex, recorded as an error.
	bad := cfg(nil, "")
	bad["ldapServerUserPassword"] = "nope"
	bg := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("ldap-authentication-flex", bad))
	policytest.WantStatus(t, bg.Get(t, "/", basic("jane", "jane-secret")...), 401)
	if d := bg.Rec.All(); len(d) != 1 || d[0] != "ldap-authentication-flex=error" {
		t.Errorf("decisions %v, want one error", d)
	}
}

func TestLDAPAuthenticationDirectoryDown(t *testing.T) {
	up := policytest.NewUpstream(t)
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("ldap-authentication-flex", map[string]any{
		"ldapServerURL": fmt.Sprintf("ldap://127.0.0.1:%d", testutil.FreePort(t)), "ldapServerUserDn": "cn=search," + slapdtest.Suffix,
		"ldapServerUserPassword": "x", "ldapSearchBase": slapdtest.Suffix,
	}))
	policytest.WantStatus(t, g.Get(t, "/", basic("jane", "jane-secret")...), 401)
	if up.Hits() != 0 {
		t.Fatal("request reached the upstream with the directory down")
	}
}

func TestLDAPAuthenticationConfigErrors(t *testing.T) {
	d, _ := policy.Lookup("ldap-authentication-flex")
	ok := `"ldapServerUserDn":"cn=a,dc=x","ldapServerUserPassword":"p","ldapSearchBase":"dc=x"`
	for cfg, want := range map[string]string{
		`{}`: "config.ldapServerUserDn: required",
		`{"ldapServerUserDn":"cn=a,dc=x","ldapSearchBase":"dc=x"}`:                             "config.ldapServerUserPassword: required",
		`{"ldapServerUserDn":"cn=a,dc=x","ldapServerUserPassword":"p"}`:                        "config.ldapSearchBase: required",
		`{"ldapServerUserDn":"not a dn","ldapServerUserPassword":"p","ldapSearchBase":"dc=x"}`: "config.ldapServerUserDn: not a distinguished name",
		`{"ldapServerURL":"http://x",` + ok + `}`:                                              "config.ldapServerURL: scheme",
		`{"ldapSearchFilter":"(uid=jane)",` + ok + `}`:                                         "config.ldapSearchFilter: must contain {0}",
		`{"ldapSearchFilter":"(uid={0}",` + ok + `}`:                                           "config.ldapSearchFilter: not an LDAP filter",
		`{"ldapSearchInSubtree":"often",` + ok + `}`:                                           "config.ldapSearchInSubtree",
	} {
		err := d.Validate([]byte(cfg))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", cfg, err, want)
		}
	}
	if err := d.Validate([]byte(`{` + ok + `}`)); err != nil {
		t.Errorf("minimal config: %v", err)
	}
}

// TestLDAPAuthenticationLDAPS: ldaps:// verifies the directory's
// certificate against Configuration spec.defaultTLS.outboundPolicyCalls;
// a certificate it does not trust authenticates no one.
func TestLDAPAuthenticationLDAPS(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "directory"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	dir := slapdtest.StartTLS(t, directoryLDIF, certPEM, keyPEM)
	up := policytest.NewUpstream(t)
	cfg := map[string]any{"ldapServerURL": dir.TLSURL, "ldapServerUserDn": "cn=search," + slapdtest.Suffix,
		"ldapServerUserPassword": "search-secret", "ldapSearchBase": "ou=people," + slapdtest.Suffix}
	trusted := &ir.Snapshot{PolicyCallTLS: &ir.UpstreamTLS{CAPEM: certPEM}}
	g := policytest.NewGateway(t, policy.Env{Snapshot: trusted}, up, policytest.Policy("ldap-authentication-flex", cfg))
	policytest.WantStatus(t, g.Get(t, "/", basic("jane", "jane-secret")...), 200)
	policytest.WantStatus(t, g.Get(t, "/", basic("jane", "wrong")...), 401)
	// The system roots do not know this certificate.
	untrusted := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("ldap-authentication-flex", cfg))
	policytest.WantStatus(t, untrusted.Get(t, "/", basic("jane", "jane-secret")...), 401)
	if d := untrusted.Rec.All(); len(d) != 1 || d[0] != "ldap-authentication-flex=error" {
		t.Errorf("decisions %v, want one error (certificate refused)", d)
	}
	if up.Hits() != 1 {
		t.Errorf("upstream hits %d, want 1", up.Hits())
	}
}
