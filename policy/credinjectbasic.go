package policy

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/flexgw/flexgw/ir"
)

// credInjectBasicConfig is credential-injection-basic-auth-flex's
// configuration: the credentials sent upstream as HTTP Basic.
type credInjectBasicConfig struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// Overwrite replaces a header the client sent (default true).
	Overwrite *bool `json:"overwrite"`
	// CustomHeader carries the credentials instead of Authorization.
	CustomHeader string `json:"customHeader"`
}

type credInjectBasic struct{}

func init() { Register(credInjectBasic{}) }

func (credInjectBasic) Name() string { return "credential-injection-basic-auth-flex" }

// compiledInjection is one header a credential-injection policy sets.
type compiledInjection struct {
	header, value string
	overwrite     bool
}

func parseCredInjectBasic(raw json.RawMessage) (*compiledInjection, error) {
	var c credInjectBasicConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	if strings.Contains(c.Username, ":") {
		return nil, fieldErr("username", "must not contain ':' (RFC 7617)")
	}
	if err := checkHeaderName("customHeader", c.CustomHeader); err != nil {
		return nil, err
	}
	h := c.CustomHeader
	if h == "" {
		h = "Authorization"
	}
	return &compiledInjection{
		header:    h,
		value:     "Basic " + base64.StdEncoding.EncodeToString([]byte(c.Username+":"+c.Password)),
		overwrite: boolOr(c.Overwrite, true),
	}, nil
}

// Validate implements Definition.
func (credInjectBasic) Validate(raw json.RawMessage) error {
	_, err := parseCredInjectBasic(raw)
	return err
}

// Build implements Definition.
func (d credInjectBasic) Build(_ Env, p *ir.Policy) (Middleware, error) {
	c, err := parseCredInjectBasic(p.Config)
	if err != nil {
		return nil, err
	}
	return injectMiddleware(d.Name(), c), nil
}

// injectMiddleware sets one literal header on every request.
func injectMiddleware(name string, cs ...*compiledInjection) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for _, c := range cs {
				injectHeader(r.Header, c.header, c.value, c.overwrite)
			}
			Decide(r, name, Allowed)
			next.ServeHTTP(w, r)
		})
	}
}

// SecretFields implements Secrets: the values that authenticate.
func (credInjectBasic) SecretFields() []string { return []string{"password"} }
