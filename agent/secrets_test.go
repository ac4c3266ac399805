package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/logpipe"
	"github.com/flexgw/flexgw/policy"
)

// marker is a secret value the test plants; it must never be seen again.
func marker(owner, field string) string { return "MKR-" + owner + "-" + field + "-9f1c2e" }

// policyExamples holds a valid configuration of every registered policy,
// with a marker (or real key material) in each field its SecretFields
// declares. A policy added to the registry without an example here fails
// TestEveryPolicyDeclaresItsSecrets: add one line.
func policyExamples(t *testing.T) map[string]map[string]any {
	keyPEM, certPEM := selfSigned(t)
	tlsCfg := map[string]any{"certificate": map[string]any{"key": keyPEM, "crt": certPEM}}
	hdr := func(dir string) []any {
		return []any{map[string]any{"key": "x-upstream-key", "value": marker("header-injection", dir)}}
	}
	return map[string]map[string]any{
		"http-basic-authentication-flex": {"username": "chris", "password": marker("basic", "password")},
		"client-id-enforcement": {"credentials": []any{
			map[string]any{"clientId": "app-1", "clientSecret": marker("clientid", "secret1")},
			map[string]any{"clientId": "app-2", "clientSecret": marker("clientid", "secret2")},
		}},
		"cors-flex":                            {"publicResource": true},
		"credential-injection-api-key-flex":    {"apiKey": marker("apikey", "apiKey")},
		"credential-injection-basic-auth-flex": {"username": "svc", "password": marker("credbasic", "password")},
		"credential-injection-oauth2-flex": {"oauthService": "http://127.0.0.1:1/token", "clientId": "gw",
			"clientSecret": marker("oauth2", "clientSecret")},
		"header-injection-flex":           {"inboundHeaders": hdr("inbound"), "outboundHeaders": hdr("outbound")},
		"header-removal-flex":             {"inboundHeaders": []any{"x-a"}},
		"ip-allowlist-flex":               {"ips": []any{"127.0.0.1"}},
		"ip-blocklist-flex":               {"ips": []any{"192.0.2.1"}},
		"json-threat-protection-flex":     {"maxContainerDepth": 10},
		"jwt-validation-flex":             {"signingMethod": "hmac", "textKey": marker("jwt", "textKey-0123456789abcdef")},
		"message-logging-flex":            {"loggingConfiguration": []any{map[string]any{"itemName": "m", "itemData": map[string]any{"message": "#[attributes.method]", "level": "INFO"}}}},
		"message-logging-outbound-flex":   {"loggingConfiguration": []any{map[string]any{"itemName": "m", "itemData": map[string]any{"message": "#[attributes.method]", "level": "INFO"}}}},
		"rate-limiting-flex":              {"rateLimits": []any{map[string]any{"maximumRequests": 100, "timePeriodInMilliseconds": 1000}}},
		"spike-control-flex":              {"maximumRequests": 100, "timePeriodInMilliseconds": 1000},
		"xml-threat-protection-flex":      {"maxNodeDepth": 10},
		"xml-threat-protection":           {"maxNodeDepth": 10},
		"tls":                             tlsCfg,
		"tls-outbound":                    map[string]any{"skipValidation": true, "certificate": map[string]any{"key": keyPEM, "crt": certPEM}},
		"stream-idle-timeout-flex":        {"timeout": 30},
		"http-caching-flex":               {"maxCacheEntries": 10},
		"oauth2-token-introspection-flex": {"introspectionURL": "http://127.0.0.1:1/introspect", "authorizationValue": "Basic " + marker("introspection", "authorizationValue")},
		"idle-timeout-flex":               {"timeout": 30},
		"response-timeout-flex":           {"timeout": 30},
		"circuit-breaker-flex":            {"thresholds": map[string]any{"maxConnections": 100}},
		"ldap-authentication-flex": {"ldapServerUserDn": "cn=admin,dc=example,dc=org", "ldapServerUserPassword": marker("ldap", "password"),
			"ldapSearchBase": "dc=example,dc=org"},
		"openidconnect-access-token-enforcement-flex": {"issuer": "http://127.0.0.1:1", "clientId": "gw", "clientSecret": marker("oidc", "clientSecret")},
		"native-ext-authz-flex": {"uri": "http://127.0.0.1:1", "serverType": "http",
			"serviceRequestHeadersToAdd": []any{map[string]any{"key": "x-gateway-key", "value": marker("extauthz", "header")}}},
		"native-ext-proc-flex": {"uri": "h2://127.0.0.1:1"},
		"tracing-flex":         {"sampling": map[string]any{"client": 10, "random": 10, "overall": 10}},
		"spec-validation-flex": {"source": "inline", "blockOperation": true,
			"spec": `{"openapi":"3.0.0","info":{"title":"t","version":"1"},"paths":{"/a":{"get":{"responses":{"200":{"description":"ok"}}}}}}`},
		"native-aws-lambda": {"arn": "arn:aws:lambda:us-east-1:123456789012:function:f", "authenticationMode": "credentials",
			"credentials": map[string]any{"accessKeyId": "AKID", "secretAccessKey": marker("lambda", "secretAccessKey"), "sessionToken": marker("lambda", "sessionToken")}},
		"native-aws-signature-flex": {"serviceName": "execute-api", "region": "us-east-1", "authenticationMode": "inline",
			"inlineCredentialProvider": map[string]any{"accessKeyId": "AKID", "secretAccessKey": marker("sigv4", "secretAccessKey"), "sessionToken": marker("sigv4", "sessionToken")}},
	}
}

// outputExamples: valid parameters of every log output type, markers in
// every parameter its type declares secret.
func outputExamples() map[string]map[string]string {
	sumoURL := "https://endpoint1.collection.sumologic.com/receiver/v1/http/" + marker("sumo", "url")
	return map[string]map[string]string{
		"splunk": {"host": "127.0.0.1", "port": "1", "tls": "off", "splunk_token": marker("splunk", "token")},
		"splunk-basic": {"host": "127.0.0.1", "port": "1", "tls": "off", "http_user": "admin",
			"http_passwd": marker("splunk", "http_passwd")},
		"newrelic":  {"endpoint": "http://127.0.0.1:1/log/v1", "license_key": marker("newrelic", "license_key")},
		"nrlogs":    {"endpoint": "http://127.0.0.1:1/log/v1", "api_key": marker("nrlogs", "api_key")},
		"sumologic": {"url": sumoURL},
		"http": {"host": "endpoint1.collection.sumologic.com", "port": "443", "tls": "on",
			"uri": "/receiver/v1/http/" + marker("http", "uri")},
		"http-generic": {"host": "127.0.0.1", "port": "1", "format": "json", "http_user": "u",
			"http_passwd": marker("http", "http_passwd"), "header": "Authorization Api-Token " + marker("http", "header")},
		"file":   {"file": "/dev/null", "format": "plain"},
		"stdout": {"format": "json_lines"},
	}
}

func outputType(example string) string {
	switch example {
	case "splunk-basic":
		return "splunk"
	case "http-generic":
		return "http"
	}
	return example
}

func selfSigned(t *testing.T) (keyPEM, certPEM string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})),
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// secretValues collects the values at the declared paths of a config: the
// strings to look for in every output.
func secretValues(t *testing.T, name string, cfg map[string]any) []string {
	t.Helper()
	b, _ := json.Marshal(cfg)
	var v any
	_ = json.Unmarshal(b, &v)
	paths, _ := policy.SecretFields(name)
	var out []string
	var walk func(v any, path []string)
	walk = func(v any, path []string) {
		if len(path) == 0 {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
			return
		}
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if path[0] == "*" || path[0] == k {
					walk(e, path[1:])
				}
			}
		case []any:
			for i, e := range x {
				if path[0] == "*" || path[0] == fmt.Sprint(i) {
					walk(e, path[1:])
				}
			}
		}
	}
	for _, p := range paths {
		walk(v, strings.Split(p, "."))
	}
	return out
}

// leaks reports every secret (or, for key material, every line of it long
// enough to be recognised) that occurs in text.
func leaks(text string, secrets []string) []string {
	var found []string
	for _, s := range secrets {
		for _, piece := range strings.Split(s, "\n") {
			if len(piece) >= 12 && !strings.HasPrefix(piece, "-----") && strings.Contains(text, piece) {
				found = append(found, piece)
			}
		}
	}
	return found
}

// TestEveryPolicyDeclaresItsSecrets walks the registries: a policy or log
// output type added later without a secrets declaration or an example
// here fails, so TestSecretsNeverLeave covers it.
func TestEveryPolicyDeclaresItsSecrets(t *testing.T) {
	ex := policyExamples(t)
	for _, name := range policy.Names() {
		d, _ := policy.Lookup(name)
		if _, ok := d.(policy.Secrets); !ok {
			t.Errorf("policy %s does not implement policy.Secrets: declare its secret config fields (SecretFields, beside its config type)", name)
		}
		cfg, ok := ex[name]
		if !ok {
			t.Errorf("policy %s has no example in agent/secrets_test.go policyExamples: add a valid config with a marker in each secret field", name)
			continue
		}
		raw, _ := json.Marshal(cfg)
		if err := d.Validate(raw); err != nil {
			t.Errorf("example of %s does not validate: %v", name, err)
		}
		paths, _ := policy.SecretFields(name)
		// Some secrets exclude each other (an API key or a client secret):
		// one planted is enough to see the policy's redaction work.
		if got := len(secretValues(t, name, cfg)); len(paths) > 0 && got == 0 {
			t.Errorf("example of %s fills none of its secret fields %v", name, paths)
		}
	}
	outs := outputExamples()
	for _, typ := range logpipe.Types() {
		if _, ok := logpipe.SecretParams(typ); !ok {
			t.Errorf("log output type %s declares no secret parameters: add it to logpipe/secrets.go from its exporter's SecretParams", typ)
		}
		if _, ok := outs[typ]; !ok {
			t.Errorf("log output type %s has no example in agent/secrets_test.go outputExamples", typ)
		}
	}
}

// TestSecretsNeverLeave runs one gateway with every registered policy and
// every log output type configured, secrets set to markers, and checks no
// marker appears in /api/v1/config, /api/v1/status, the runtime log, or
// the errors of a rejected reload and of each policy's Validate.
func TestSecretsNeverLeave(t *testing.T) {
	policies := policyExamples(t)
	outputs := outputExamples()
	var secrets []string
	for name, cfg := range policies {
		secrets = append(secrets, secretValues(t, name, cfg)...)
	}
	for ex, params := range outputs {
		declared, _ := logpipe.SecretParams(outputType(ex))
		for _, k := range declared {
			if v := params[k]; v != "" {
				secrets = append(secrets, v)
			}
		}
	}
	if len(secrets) < 15 {
		t.Fatalf("only %d secrets planted; the examples lost their markers", len(secrets))
	}

	up := upstream(t, "up")
	port := testutil.FreePort(t)
	dir := t.TempDir()
	write := func(broken bool) {
		var b strings.Builder
		fmt.Fprintf(&b, "apiVersion: gateway.mulesoft.com/v1alpha1\nkind: ApiInstance\nmetadata:\n  name: vault\nspec:\n  address: http://127.0.0.1:%d/\n  services:\n    backend:\n      address: %s\n      routes:\n        - rules:\n            - path: (/.*)\n", port, up.URL)
		names := make([]string, 0, len(policies))
		for n := range policies {
			names = append(names, n)
		}
		sort.Strings(names)
		for i, n := range names {
			cfg := policies[n]
			if broken {
				cfg = breakConfig(cfg)
			}
			j, _ := json.Marshal(cfg)
			fmt.Fprintf(&b, "---\napiVersion: gateway.mulesoft.com/v1alpha1\nkind: PolicyBinding\nmetadata:\n  name: p%d\nspec:\n  targetRef:\n    name: vault\n  policyRef:\n    name: %s\n  config: %s\n", i, n, j)
		}
		fmt.Fprintf(&b, "---\napiVersion: gateway.mulesoft.com/v1beta1\nkind: Configuration\nmetadata:\n  name: logging\nspec:\n  logging:\n    outputs:\n")
		var outNames []string
		for ex, params := range outputs {
			outNames = append(outNames, ex)
			j, _ := json.Marshal(params)
			if broken {
				p := map[string]string{}
				for k, v := range params {
					p[k] = v
				}
				p["compress"] = "zstd-" + ex // an invalid value beside the secrets
				j, _ = json.Marshal(p)
			}
			fmt.Fprintf(&b, "      - name: %s\n        type: %s\n        parameters: %s\n", ex, outputType(ex), j)
		}
		sort.Strings(outNames)
		fmt.Fprintf(&b, "    accessLogs:\n      outputs: [%s]\n    runtimeLogs:\n      outputs: [%s]\n", strings.Join(outNames, ", "), strings.Join(outNames, ", "))
		writeConfig(t, dir, "vault.yaml", b.String())
	}
	write(false)
	if _, err := Compile(dir, 1); err != nil {
		t.Fatalf("the example configuration does not compile:\n%v", err)
	}

	var logs testutil.SyncBuffer
	o := testOptions(t, dir, &logs)
	ta := startAgent(t, o, &logs)

	code, cfg := get(t, "http://"+ta.admin+"/api/v1/config")
	if code != http.StatusOK {
		t.Fatalf("/api/v1/config: %d %s", code, cfg)
	}
	for name := range policies {
		if !strings.Contains(cfg, `"`+name+`"`) {
			t.Errorf("/api/v1/config lacks policy %s: the test would not see its leak", name)
		}
	}
	if l := leaks(cfg, secrets); len(l) > 0 {
		t.Errorf("/api/v1/config shows secrets: %q", l)
	}
	// A request through every policy, so runtime paths log what they log.
	resp, err := http.Get(fmt.Sprintf("https://127.0.0.1:%d/x", port))
	if err == nil {
		resp.Body.Close()
	}

	write(true)
	st := ta.waitReload(t, "failure", "file change")
	if len(st.LastReload.Errors) < len(policies)/2 {
		t.Errorf("the broken config produced only %d errors: %q", len(st.LastReload.Errors), st.LastReload.Errors)
	}
	_, status := get(t, "http://"+ta.admin+"/api/v1/status")
	if l := leaks(status, secrets); len(l) > 0 {
		t.Errorf("/api/v1/status shows secrets: %q\n%s", l, status)
	}
	ta.cancel() // the shutdown flush to unreachable outputs logs its failures
	<-ta.done
	ta.done <- nil
	if l := leaks(logs.String(), secrets); len(l) > 0 {
		t.Errorf("the runtime log shows secrets: %q", l)
	}

	// Each policy's own errors, field by field broken, secrets in place.
	for name, cfg := range policies {
		d, _ := policy.Lookup(name)
		own := secretValues(t, name, cfg)
		for field := range cfg {
			c := map[string]any{}
			for k, v := range cfg {
				c[k] = v
			}
			c[field] = wrongType(cfg[field])
			raw, _ := json.Marshal(c)
			if err := d.Validate(raw); err != nil {
				if l := leaks(err.Error(), own); len(l) > 0 {
					t.Errorf("%s: error for a broken %s quotes a secret: %v", name, field, err)
				}
			}
		}
	}
	_ = os.Remove(filepath.Join(dir, "vault.yaml"))
}

// breakConfig returns cfg with every field that is not a string given the
// wrong type, so the policy rejects it while its secrets stay in place.
func breakConfig(cfg map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range cfg {
		if _, isStr := v.(string); isStr {
			out[k] = v
			continue
		}
		out[k] = wrongType(v)
	}
	if len(out) == len(cfg) {
		out["zzUnknownOption"] = []any{1} // for policies with only strings: may or may not be rejected
	}
	return out
}

func wrongType(v any) any {
	switch v.(type) {
	case string:
		return 12345
	case bool, float64, int:
		return "not-a-number"
	default:
		return "not-an-object"
	}
}
