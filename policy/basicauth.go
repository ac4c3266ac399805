package policy

import (
	"crypto/sha1" //nolint:gosec // see RenderEnvoy
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	basicauthv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/basic_auth/v3"

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
			r = r.WithContext(WithAuthentication(r.Context(), &Authentication{Principal: user}))
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

// RenderEnvoy implements EnvoyRenderer with Envoy's basic_auth filter. Its
// users list is htpasswd with {SHA} hashes (the only scheme it accepts).
func (d basicAuth) RenderEnvoy(_ Env, p *ir.Policy) ([]EnvoyFilter, error) {
	c, err := parseBasicAuth(p.Config)
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum([]byte(c.Password)) //nolint:gosec // Envoy's basic_auth only verifies {SHA}
	users := c.Username + ":{SHA}" + base64.StdEncoding.EncodeToString(sum[:]) + "\n"
	return []EnvoyFilter{{
		Name: FilterName(p),
		Config: &basicauthv3.BasicAuth{
			Users: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: users}},
			Realm: "flexgw",
		},
	}}, nil
}

// SecretFields implements Secrets: the values that authenticate.
func (basicAuth) SecretFields() []string { return []string{"password"} }
