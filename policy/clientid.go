package policy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy/internal/dw"
)

// clientIDConfig is client-id-enforcement's configuration. Flex checks
// credentials against Anypoint, which Local Mode lacks; flexgw checks them
// against a local file, an inline list, or Redis.
type clientIDConfig struct {
	// CredentialsOriginHasHTTPBasicAuthenticationHeader is Flex's switch:
	// httpBasicAuthenticationHeader (default) or customExpression.
	CredentialsOrigin      string `json:"credentialsOriginHasHttpBasicAuthenticationHeader"`
	ClientIDExpression     string `json:"clientIdExpression"`
	ClientSecretExpression string `json:"clientSecretExpression"`

	// CredentialsFile holds one "clientId:clientSecret" per line ("#"
	// comments; a line with no ":" is an id that needs no secret).
	CredentialsFile string `json:"credentialsFile"`
	// Credentials lists clients inline.
	Credentials []clientCred `json:"credentials"`
	// CredentialsStore "redis" looks ids up in sharedStorage: the value at
	// RedisKeyPrefix+clientId is the secret ("" for none).
	CredentialsStore string `json:"credentialsStore"`
	RedisKeyPrefix   string `json:"redisKeyPrefix"`
	// FailOpen admits requests when Redis cannot be reached (default false: 503).
	FailOpen bool `json:"failOpen"`
}

type clientCred struct {
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
}

// KVStore is the lookup part of the shared store, used for credentials.
type KVStore interface {
	Get(ctx context.Context, key string) (value string, found bool, err error)
}

type clientIDEnforcement struct{}

func init() { Register(clientIDEnforcement{}) }

func (clientIDEnforcement) Name() string { return "client-id-enforcement" }

type clientIDPolicy struct {
	cfg     clientIDConfig
	idExpr  *dw.Expr
	secExpr *dw.Expr
	creds   map[string]string
	kv      KVStore
	log     *slog.Logger
	api     string
}

func parseClientID(raw json.RawMessage, load bool) (*clientIDPolicy, error) {
	var c clientIDConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	p := &clientIDPolicy{cfg: c, creds: map[string]string{}}
	switch c.CredentialsOrigin {
	case "", "httpBasicAuthenticationHeader":
	case "customExpression":
		if c.ClientIDExpression == "" {
			c.ClientIDExpression = "#[attributes.headers['client_id']]"
		}
		e, err := compileExpr("clientIdExpression", c.ClientIDExpression)
		if err != nil {
			return nil, err
		}
		p.idExpr = e
		if c.ClientSecretExpression != "" {
			if p.secExpr, err = compileExpr("clientSecretExpression", c.ClientSecretExpression); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fieldErr("credentialsOriginHasHttpBasicAuthenticationHeader", "must be httpBasicAuthenticationHeader or customExpression, got %q", c.CredentialsOrigin)
	}
	switch c.CredentialsStore {
	case "", "local":
		if c.CredentialsFile == "" && len(c.Credentials) == 0 {
			return nil, fieldErr("credentialsFile", "required: Local Mode has no Anypoint client registry; give credentialsFile, credentials, or credentialsStore: redis")
		}
	case "redis":
		if p.cfg.RedisKeyPrefix == "" {
			p.cfg.RedisKeyPrefix = "flexgw:client:"
		}
	default:
		return nil, fieldErr("credentialsStore", "must be local or redis, got %q", c.CredentialsStore)
	}
	for i, cr := range c.Credentials {
		if cr.ClientID == "" {
			return nil, fieldErr(fmt.Sprintf("credentials[%d].clientId", i), "required")
		}
		p.creds[cr.ClientID] = cr.ClientSecret
	}
	if c.CredentialsFile != "" && load {
		if err := loadCredentials(c.CredentialsFile, p.creds); err != nil {
			return nil, fieldWrap("credentialsFile", err)
		}
	}
	return p, nil
}

func loadCredentials(path string, into map[string]string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		id, secret, _ := strings.Cut(t, ":")
		if id == "" {
			return fmt.Errorf("%s:%d: empty client id", path, line)
		}
		into[id] = secret
	}
	return sc.Err()
}

// Validate implements Definition.
func (clientIDEnforcement) Validate(raw json.RawMessage) error {
	_, err := parseClientID(raw, true)
	return err
}

// Build implements Definition.
func (d clientIDEnforcement) Build(env Env, p *ir.Policy) (Middleware, error) {
	cp, err := parseClientID(p.Config, true)
	if err != nil {
		return nil, err
	}
	if cp.cfg.CredentialsStore == "redis" {
		kv, ok := env.Shared.(KVStore)
		if !ok || env.Shared == nil {
			return nil, fieldErr("credentialsStore", "redis needs Configuration.spec.sharedStorage.redis")
		}
		cp.kv = kv
	}
	cp.log = logger(env).With("policy", d.Name(), "binding", p.Binding)
	cp.api = apiName(env)
	return cp.middleware, nil
}

const clientIDName = "client-id-enforcement"

func (cp *clientIDPolicy) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var id, secret string
		var ok bool
		if cp.idExpr != nil {
			env := &dw.Env{Request: r, API: cp.api}
			id = cp.idExpr.String(env)
			if cp.secExpr != nil {
				secret = cp.secExpr.String(env)
			}
			ok = id != ""
		} else {
			id, secret, ok = basicCredentials(r)
		}
		if !ok {
			deny(w, r, clientIDName, Denied, http.StatusUnauthorized, "unauthorized: client id not provided")
			return
		}
		want, found := cp.creds[id]
		if cp.kv != nil {
			v, f, err := cp.kv.Get(r.Context(), cp.cfg.RedisKeyPrefix+id)
			if err != nil {
				cp.log.Debug("client id lookup failed", "failOpen", cp.cfg.FailOpen, "err", err)
				if cp.cfg.FailOpen {
					Decide(r, clientIDName, Error)
					next.ServeHTTP(w, r)
					return
				}
				deny(w, r, clientIDName, Error, http.StatusServiceUnavailable, "client id validation unavailable: shared storage unreachable")
				return
			}
			want, found = v, f
		}
		// An id that needs no secret still compares, so timing is uniform.
		secretOK := constantTimeEqual(secret, want)
		if cp.idExpr != nil && cp.secExpr == nil {
			secretOK = true // only an id is asked for
		}
		if !found || !secretOK {
			deny(w, r, clientIDName, Denied, http.StatusUnauthorized, "unauthorized: invalid client credentials")
			return
		}
		r, _ = authenticate(r, Authentication{ClientID: id, Principal: id})
		Decide(r, clientIDName, Allowed)
		next.ServeHTTP(w, r)
	})
}

// SecretFields implements Secrets: the values that authenticate.
func (clientIDEnforcement) SecretFields() []string { return []string{"credentials.*.clientSecret"} }
