package policy

import (
	"encoding/json"

	"github.com/flexgw/flexgw/ir"
)

// credInjectAPIKeyConfig is credential-injection-api-key-flex's
// configuration: an API key (Authorization or a custom header) or a
// client id and secret (client_id / client_secret or custom headers).
type credInjectAPIKeyConfig struct {
	// AuthType is "apiKey" (default) or "clientCredentials".
	AuthType  string `json:"authType"`
	Overwrite *bool  `json:"overwrite"`

	APIKey       string `json:"apiKey"`
	CustomHeader string `json:"customHeader"`

	ClientID                 string `json:"clientId"`
	ClientSecret             string `json:"clientSecret"`
	CustomClientIDHeader     string `json:"customClientIdHeader"`
	CustomClientSecretHeader string `json:"customClientSecretHeader"`
}

type credInjectAPIKey struct{}

func init() { Register(credInjectAPIKey{}) }

func (credInjectAPIKey) Name() string { return "credential-injection-api-key-flex" }

func parseCredInjectAPIKey(raw json.RawMessage) ([]*compiledInjection, error) {
	var c credInjectAPIKeyConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	ow := boolOr(c.Overwrite, true)
	for _, f := range []struct{ field, v string }{
		{"customHeader", c.CustomHeader}, {"customClientIdHeader", c.CustomClientIDHeader}, {"customClientSecretHeader", c.CustomClientSecretHeader},
	} {
		if err := checkHeaderName(f.field, f.v); err != nil {
			return nil, err
		}
	}
	switch c.AuthType {
	case "", "apiKey":
		if c.APIKey == "" {
			return nil, fieldErr("apiKey", "required when authType is apiKey")
		}
		if err := checkHeaderValue("apiKey", c.APIKey); err != nil {
			return nil, err
		}
		return []*compiledInjection{{header: orDefault(c.CustomHeader, "Authorization"), value: c.APIKey, overwrite: ow}}, nil
	case "clientCredentials":
		if c.ClientID == "" {
			return nil, fieldErr("clientId", "required when authType is clientCredentials")
		}
		if c.ClientSecret == "" {
			return nil, fieldErr("clientSecret", "required when authType is clientCredentials")
		}
		if err := checkHeaderValue("clientId", c.ClientID); err != nil {
			return nil, err
		}
		if err := checkHeaderValue("clientSecret", c.ClientSecret); err != nil {
			return nil, err
		}
		return []*compiledInjection{
			{header: orDefault(c.CustomClientIDHeader, "client_id"), value: c.ClientID, overwrite: ow},
			{header: orDefault(c.CustomClientSecretHeader, "client_secret"), value: c.ClientSecret, overwrite: ow},
		}, nil
	}
	return nil, fieldErr("authType", "must be apiKey or clientCredentials, got %q", c.AuthType)
}

// Validate implements Definition.
func (credInjectAPIKey) Validate(raw json.RawMessage) error {
	_, err := parseCredInjectAPIKey(raw)
	return err
}

// Build implements Definition.
func (d credInjectAPIKey) Build(_ Env, p *ir.Policy) (Middleware, error) {
	cs, err := parseCredInjectAPIKey(p.Config)
	if err != nil {
		return nil, err
	}
	return injectMiddleware(d.Name(), cs...), nil
}

// SecretFields implements Secrets: the values that authenticate.
func (credInjectAPIKey) SecretFields() []string { return []string{"apiKey", "clientSecret"} }
