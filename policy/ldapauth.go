package policy

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/flexgw/flexgw/ir"
)

// ldapAuthConfig is ldap-authentication-flex's configuration as Flex
// documents it: HTTP Basic credentials checked against an LDAP directory
// (search the user's entry as the service account, then bind as the user).
type ldapAuthConfig struct {
	LDAPServerURL          string   `json:"ldapServerURL"`
	LDAPServerUserDn       string   `json:"ldapServerUserDn"`
	LDAPServerUserPassword string   `json:"ldapServerUserPassword"`
	LDAPSearchBase         string   `json:"ldapSearchBase"`
	LDAPSearchFilter       string   `json:"ldapSearchFilter"`
	LDAPSearchInSubtree    FlexBool `json:"ldapSearchInSubtree"`
}

type ldapAuth struct{}

func init() { Register(ldapAuth{}) }

func (ldapAuth) Name() string { return "ldap-authentication-flex" }

// compiledLDAP is a validated ldap-authentication-flex configuration.
type compiledLDAP struct {
	url            string
	tls            bool
	host           string
	bindDN, bindPW string
	base, filter   string
	scope          int
}

// ldapTimeout bounds every exchange with the directory (dial, bind, search).
const ldapTimeout = 10 * time.Second

func parseLDAPAuth(raw json.RawMessage) (*compiledLDAP, error) {
	var c ldapAuthConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	out := &compiledLDAP{url: c.LDAPServerURL, bindDN: c.LDAPServerUserDn, bindPW: c.LDAPServerUserPassword,
		base: c.LDAPSearchBase, filter: c.LDAPSearchFilter, scope: ldap.ScopeSingleLevel}
	if out.url == "" {
		out.url = "ldap://127.0.0.1:389"
	}
	u, err := url.Parse(out.url)
	if err != nil || u.Host == "" {
		return nil, fieldErr("ldapServerURL", "must be an ldap:// or ldaps:// URL, got %q", out.url)
	}
	switch strings.ToLower(u.Scheme) {
	case "ldap":
	case "ldaps":
		out.tls = true
	default:
		return nil, fieldErr("ldapServerURL", "scheme %q not supported: want ldap or ldaps", u.Scheme)
	}
	out.host = u.Hostname()
	if out.bindDN == "" {
		return nil, fieldErr("ldapServerUserDn", "required: the DN the gateway binds as to search for users")
	}
	if _, err := ldap.ParseDN(out.bindDN); err != nil {
		return nil, fieldWrap("ldapServerUserDn", fmt.Errorf("not a distinguished name: %w", err))
	}
	if out.bindPW == "" {
		// An empty password is an unauthenticated bind (RFC 4513 §5.1.2):
		// the server says yes without checking anything.
		return nil, fieldErr("ldapServerUserPassword", "required")
	}
	if out.base == "" {
		return nil, fieldErr("ldapSearchBase", "required: the DN the user search starts at")
	}
	if _, err := ldap.ParseDN(out.base); err != nil {
		return nil, fieldWrap("ldapSearchBase", fmt.Errorf("not a distinguished name: %w", err))
	}
	if out.filter == "" {
		out.filter = "(uid={0})"
	}
	if !strings.Contains(out.filter, "{0}") {
		return nil, fieldErr("ldapSearchFilter", "must contain {0}, where the username goes, got %q", out.filter)
	}
	if _, err := ldap.CompileFilter(strings.ReplaceAll(out.filter, "{0}", "user")); err != nil {
		return nil, fieldWrap("ldapSearchFilter", fmt.Errorf("not an LDAP filter (RFC 4515): %w", err))
	}
	if c.LDAPSearchInSubtree.Or(false) {
		out.scope = ldap.ScopeWholeSubtree
	}
	return out, nil
}

// Validate implements Definition.
func (ldapAuth) Validate(raw json.RawMessage) error {
	_, err := parseLDAPAuth(raw)
	return err
}

// SecretFields implements Secrets: the service account's password.
func (ldapAuth) SecretFields() []string { return []string{"ldapServerUserPassword"} }

// errBadCredentials is a user the directory does not know or a wrong password.
var errBadCredentials = errors.New("invalid credentials")

// ldapPool keeps idle connections to the directory: a request costs two
// binds and a search, not a TCP (and TLS) handshake too.
type ldapPool struct {
	c    *compiledLDAP
	tls  *tls.Config
	idle chan *ldap.Conn
}

func (p *ldapPool) get() (*ldap.Conn, error) {
	select {
	case conn := <-p.idle:
		if !conn.IsClosing() {
			return conn, nil
		}
	default:
	}
	opts := []ldap.DialOpt{ldap.DialWithDialer(&net.Dialer{Timeout: ldapTimeout})}
	if p.c.tls {
		opts = append(opts, ldap.DialWithTLSConfig(p.tls))
	}
	conn, err := ldap.DialURL(p.c.url, opts...)
	if err != nil {
		return nil, err
	}
	conn.SetTimeout(ldapTimeout)
	return conn, nil
}

func (p *ldapPool) put(conn *ldap.Conn) {
	select {
	case p.idle <- conn:
	default:
		conn.Close()
	}
}

// authenticate finds user's entry as the service account and binds as it
// with pass. The username is escaped into the filter (RFC 4515 §3), so
// "*" or ")(uid=*" are the literal characters, never filter syntax.
func (p *ldapPool) authenticate(user, pass string) error {
	if user == "" || pass == "" {
		return errBadCredentials // an empty password would be an unauthenticated bind
	}
	conn, err := p.get()
	if err != nil {
		return fmt.Errorf("ldap dial %s: %w", p.c.url, err)
	}
	healthy := false
	defer func() {
		if healthy {
			p.put(conn)
		} else {
			conn.Close()
		}
	}()
	if err := conn.Bind(p.c.bindDN, p.c.bindPW); err != nil {
		return fmt.Errorf("ldap bind as %s: %w", p.c.bindDN, err)
	}
	res, err := conn.Search(ldap.NewSearchRequest(p.c.base, p.c.scope, ldap.NeverDerefAliases, 2, int(ldapTimeout/time.Second), false,
		strings.ReplaceAll(p.c.filter, "{0}", ldap.EscapeFilter(user)), []string{"1.1"}, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			healthy = true
			return fmt.Errorf("ldap search base %s: %w", p.c.base, err)
		}
		return fmt.Errorf("ldap search: %w", err)
	}
	if res == nil || len(res.Entries) != 1 {
		// None, or more than one (the filter is ambiguous): no one is
		// authenticated as "whichever matched".
		healthy = err == nil
		return errBadCredentials
	}
	err = conn.Bind(res.Entries[0].DN, pass)
	switch {
	case err == nil:
		healthy = true
		return nil
	case ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials):
		healthy = true
		return errBadCredentials
	}
	return fmt.Errorf("ldap bind as user: %w", err)
}

// Build implements Definition.
func (d ldapAuth) Build(env Env, p *ir.Policy) (Middleware, error) {
	c, err := parseLDAPAuth(p.Config)
	if err != nil {
		return nil, err
	}
	pool := &ldapPool{c: c, idle: make(chan *ldap.Conn, 8), tls: &tls.Config{ServerName: c.host}}
	if env.Snapshot != nil && env.Snapshot.PolicyCallTLS != nil {
		if pool.tls, err = PolicyCallTLSConfig(env.Snapshot.PolicyCallTLS); err != nil {
			return nil, fmt.Errorf("defaultTLS.outboundPolicyCalls: %w", err)
		}
		if pool.tls.ServerName == "" {
			pool.tls.ServerName = c.host
		}
	}
	name := d.Name()
	log := logger(env).With("policy", name, "binding", p.Binding)
	// Flex's challenge, realm included.
	const challenge = `Basic realm="mule-realm"`
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user, pass, ok := basicCredentials(r)
			if !ok {
				deny(w, r, name, Denied, http.StatusUnauthorized, "unauthorized: basic credentials required", "WWW-Authenticate", challenge)
				return
			}
			if err := pool.authenticate(user, pass); err != nil {
				outcome := Denied
				if !errors.Is(err, errBadCredentials) {
					// Flex answers 401 here too; the log says why.
					outcome = Error
					log.Warn("ldap authentication failed", "err", err)
				}
				deny(w, r, name, outcome, http.StatusUnauthorized, "unauthorized: invalid credentials", "WWW-Authenticate", challenge)
				return
			}
			r, _ = authenticate(r, Authentication{Principal: user})
			Decide(r, name, Allowed)
			next.ServeHTTP(w, r)
		})
	}, nil
}
