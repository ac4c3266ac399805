package policy

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/flexgw/flexgw/ir"
)

// basicAuthConfig is http-basic-authentication-flex's configuration: one
// username and password.
type basicAuthConfig struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type basicAuth struct{}

func init() { Register(basicAuth{}) }

func (basicAuth) Name() string { return "http-basic-authentication-flex" }

func parseBasicAuth(raw json.RawMessage) (*basicAuthConfig, error) {
	var c basicAuthConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	if c.Username == "" {
		return nil, fieldErr("username", "required")
	}
	if strings.Contains(c.Username, ":") {
		return nil, fieldErr("username", "must not contain ':' (RFC 7617)")
	}
	if c.Password == "" {
		return nil, fieldErr("password", "required")
	}
	return &c, nil
}

// Validate implements Definition.
func (basicAuth) Validate(raw json.RawMessage) error {
	_, err := parseBasicAuth(raw)
	return err
}

// Build implements Definition.
func (d basicAuth) Build(_ Env, p *ir.Policy) (Middleware, error) {
	c, err := parseBasicAuth(p.Config)
	if err != nil {
		return nil, err
	}
	name := d.Name()
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user, pass, ok := basicCredentials(r)
			// Both comparisons always run, each in constant time, so the
			// response time says nothing about which part was wrong.
			userOK := constantTimeEqual(user, c.Username)
			passOK := constantTimeEqual(pass, c.Password)
			if !ok || !userOK || !passOK {
				deny(w, r, name, Denied, http.StatusUnauthorized, "unauthorized: invalid or missing basic credentials",
					"WWW-Authenticate", `Basic realm="flexgw", charset="UTF-8"`)
				return
			}
			r, _ = authenticate(r, Authentication{Principal: user})
			Decide(r, name, Allowed)
			next.ServeHTTP(w, r)
		})
	}, nil
}

// basicCredentials parses an Authorization: Basic header.
func basicCredentials(r *http.Request) (user, pass string, ok bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 6 || !strings.EqualFold(h[:6], "basic ") {
		return "", "", false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[6:]))
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(b), ":")
	return user, pass, ok
}

// SecretFields implements Secrets: the values that authenticate.
func (basicAuth) SecretFields() []string { return []string{"password"} }

// BasicAuthOf validates p's http-basic-authentication-flex configuration
// and returns the one user it admits.
func BasicAuthOf(p *ir.Policy) (username, password string, err error) {
	c, err := parseBasicAuth(p.Config)
	if err != nil {
		return "", "", err
	}
	return c.Username, c.Password, nil
}
