package policy_test

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/policy"
)

// petSpec is a small OpenAPI 3.0 document with the constructs Flex's page
// lists: required properties, additionalProperties, types, patterns, path,
// query and header parameters.
const petSpec = `{
  "openapi": "3.0.2",
  "info": {"title": "pets", "version": "1"},
  "servers": [{"url": "https://pets.example.com/v1"}],
  "paths": {
    "/pets": {
      "get": {
        "parameters": [
          {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
          {"name": "x-tenant", "in": "header", "required": true, "schema": {"type": "string", "pattern": "^[a-z]+$"}}
        ],
        "responses": {"200": {"description": "ok"}}
      },
      "post": {
        "requestBody": {
          "required": true,
          "content": {"application/json": {"schema": {
            "type": "object",
            "required": ["name", "age"],
            "additionalProperties": false,
            "properties": {
              "name": {"type": "string", "pattern": "^[A-Z][a-z]+$"},
              "age": {"type": "integer", "format": "int64"},
              "tag": {"type": "string"}
            }
          }}}
        },
        "responses": {"201": {"description": "created"}}
      }
    },
    "/pets/{id}": {
      "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
      "get": {"responses": {"200": {"description": "ok"}}}
    },
    "/upload": {
      "put": {"responses": {"200": {"description": "ok"}}}
    }
  }
}`

func specCfg(extra map[string]any) map[string]any {
	c := map[string]any{"source": "inline", "apiBasePath": "/", "blockOperation": true, "strictParamsValidation": false, "spec": petSpec}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func send(t *testing.T, method, url, ctype, body string, hdr ...string) policytest.Resp {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body = nil
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return policytest.Resp{Status: res.StatusCode, Header: res.Header, Body: string(b)}
}

func TestSpecValidationBlocks(t *testing.T) {
	up := newBodyUpstream(t)
	g := policytest.NewGateway(t, policy.Env{}, &policytest.Upstream{Server: up.Server}, policytest.Policy("spec-validation-flex", specCfg(nil)))
	cases := []struct {
		name, method, path, ctype, body string
		hdr                             []string
		want                            int
		reason                          string // in the error body
	}{
		{"valid get", "GET", "/pets?limit=5", "", "", []string{"X-Tenant", "acme"}, 200, ""},
		{"missing required header", "GET", "/pets", "", "", nil, 400, "x-tenant"},
		{"header breaks pattern", "GET", "/pets", "", "", []string{"X-Tenant", "ACME1"}, 400, "x-tenant"},
		{"query over maximum", "GET", "/pets?limit=500", "", "", []string{"X-Tenant", "acme"}, 400, "limit"},
		{"query of wrong type", "GET", "/pets?limit=many", "", "", []string{"X-Tenant", "acme"}, 400, "limit"},
		{"path param integer", "GET", "/pets/42", "", "", nil, 200, ""},
		{"path param not integer", "GET", "/pets/rex", "", "", nil, 400, "id"},
		{"undeclared path", "GET", "/owners", "", "", nil, 400, "not declared"},
		{"undeclared method", "DELETE", "/pets/42", "", "", nil, 400, "DELETE"},
		{"valid body", "POST", "/pets", "application/json", `{"name":"Rex","age":3}`, nil, 200, ""},
		{"missing required property", "POST", "/pets", "application/json", `{"name":"Rex"}`, nil, 400, "age"},
		{"additional property", "POST", "/pets", "application/json", `{"name":"Rex","age":3,"owner":"x"}`, nil, 400, "owner"},
		{"wrong property type", "POST", "/pets", "application/json", `{"name":"Rex","age":"three"}`, nil, 400, "age"},
		{"pattern broken", "POST", "/pets", "application/json", `{"name":"rex","age":3}`, nil, 400, "name"},
		{"body not JSON", "POST", "/pets", "application/json", `{"name":`, nil, 400, ""},
		{"required body missing", "POST", "/pets", "application/json", ``, nil, 400, ""},
		{"undeclared content type", "POST", "/pets", "text/csv", `Rex,3`, nil, 400, ""},
		{"operation without body schema", "PUT", "/upload", "application/octet-stream", "raw bytes", nil, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(up.got())
			r := send(t, c.method, g.URL+c.path, c.ctype, c.body, c.hdr...)
			policytest.WantStatus(t, r, c.want)
			if c.want != 200 {
				policytest.WantErrorBody(t, r, "spec-validation-flex")
				if !strings.Contains(r.Body, c.reason) {
					t.Errorf("error %q does not name %q", r.Body, c.reason)
				}
				if n := len(up.got()); n != before {
					t.Fatalf("a rejected request reached the upstream")
				}
				return
			}
			got := up.got()
			if len(got) != before+1 || got[len(got)-1] != c.body {
				t.Fatalf("upstream got %q, want the body unchanged %q", got[before:], c.body)
			}
		})
	}
}

// The API base path is removed before the spec's paths are matched; a
// request outside it does not conform.
func TestSpecValidationAPIBasePath(t *testing.T) {
	up := policytest.NewUpstream(t)
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("spec-validation-flex", specCfg(map[string]any{"apiBasePath": "/api/"})))
	policytest.WantStatus(t, g.Get(t, "/api/pets/7"), 200)
	r := g.Get(t, "/pets/7")
	policytest.WantStatus(t, r, 400)
	if !strings.Contains(r.Body, "base path") {
		t.Errorf("body %q", r.Body)
	}
	policytest.WantStatus(t, g.Get(t, "/apix/pets/7"), 400)
	policytest.WantStatus(t, g.Get(t, "/api/pets/x"), 400)
}

func TestSpecValidationStrictParams(t *testing.T) {
	up := policytest.NewUpstream(t)
	loose := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("spec-validation-flex", specCfg(nil)))
	strict := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("spec-validation-flex", specCfg(map[string]any{"strictParamsValidation": true})))
	policytest.WantStatus(t, loose.Get(t, "/pets/1?debug=1"), 200)
	r := strict.Get(t, "/pets/1?debug=1")
	policytest.WantStatus(t, r, 400)
	if !strings.Contains(r.Body, `\"debug\"`) {
		t.Errorf("body %q does not name the parameter", r.Body)
	}
	policytest.WantStatus(t, strict.Get(t, "/pets?limit=3", "X-Tenant", "acme"), 200)
}

// blockOperation false: the request goes through and the violation is logged.
func TestSpecValidationLogOnly(t *testing.T) {
	up := newBodyUpstream(t)
	var logs testutil.SyncBuffer
	env := policy.Env{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	g := policytest.NewGateway(t, env, &policytest.Upstream{Server: up.Server}, policytest.Policy("spec-validation-flex", specCfg(map[string]any{"blockOperation": false})))
	r := send(t, "POST", g.URL+"/pets", "application/json", `{"name":"Rex"}`)
	policytest.WantStatus(t, r, 200)
	if got := up.got(); len(got) != 1 || got[0] != `{"name":"Rex"}` {
		t.Fatalf("upstream got %q", got)
	}
	l := logs.String()
	if !strings.Contains(l, `"component":"policy"`) || !strings.Contains(l, "age") || !strings.Contains(l, "not blocked") {
		t.Fatalf("log %q: want the violation logged", l)
	}
	if d := g.Rec.All(); len(d) != 1 || d[0] != "spec-validation-flex=allowed" {
		t.Fatalf("decisions %v", d)
	}
}

// A body over MaxInspectedBody is refused before it is held in memory,
// whether the client announced its length or streamed it chunked.
func TestSpecValidationBodyTooLarge(t *testing.T) {
	up := newBodyUpstream(t)
	g := policytest.NewGateway(t, policy.Env{}, &policytest.Upstream{Server: up.Server}, policytest.Policy("spec-validation-flex", specCfg(nil)))
	big := `{"name":"Rex","age":3,"tag":"` + strings.Repeat("a", policy.MaxInspectedBody) + `"}`
	policytest.WantStatus(t, send(t, "POST", g.URL+"/pets", "application/json", big), 413)
	req, _ := http.NewRequest("POST", g.URL+"/pets", io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 413 {
		t.Fatalf("chunked: status %d, want 413", res.StatusCode)
	}
	if n := len(up.got()); n != 0 {
		t.Fatalf("%d oversized bodies reached the upstream", n)
	}
}

// A YAML specification is accepted as well as JSON.
func TestSpecValidationYAMLSpec(t *testing.T) {
	spec := `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /items/{n}:
    get:
      parameters:
        - {name: n, in: path, required: true, schema: {type: integer, minimum: 0}}
      responses:
        "200": {description: ok}
`
	g := policytest.NewGateway(t, policy.Env{}, policytest.NewUpstream(t), policytest.Policy("spec-validation-flex", map[string]any{"source": "inline", "spec": spec, "blockOperation": true}))
	policytest.WantStatus(t, g.Get(t, "/items/3"), 200)
	policytest.WantStatus(t, g.Get(t, "/items/-3"), 400)
}

func TestSpecValidationConfigErrors(t *testing.T) {
	// The spec may not make the gateway read a file: an external $ref is
	// refused even when the file exists.
	secret := filepath.Join(t.TempDir(), "schema.json")
	if err := os.WriteFile(secret, []byte(`{"type":"string"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	extRef := strings.Replace(petSpec, `{"type": "string"}`, `{"$ref": "`+secret+`"}`, 1)
	cases := []struct {
		cfg   map[string]any
		field string
	}{
		{map[string]any{"spec": petSpec}, "config.source"},
		{map[string]any{"source": "context", "spec": petSpec}, "config.source"},
		{map[string]any{"source": "exchange", "spec": petSpec}, "config.source"},
		{map[string]any{"source": "inline"}, "config.spec"},
		{map[string]any{"source": "inline", "spec": "{not json"}, "config.spec"},
		{map[string]any{"source": "inline", "spec": `{"swagger":"2.0","info":{"title":"t","version":"1"},"paths":{}}`}, "config.spec"},
		{map[string]any{"source": "inline", "spec": `{"openapi":"3.0.0","info":{"title":"t","version":"1"},"paths":{}}`}, "config.spec"},
		{map[string]any{"source": "inline", "spec": extRef}, "config.spec"},
		{map[string]any{"source": "inline", "spec": `{"openapi":"3.0.0","info":{"title":"t","version":"1"},"paths":{"/a":{"get":{"responses":{"200":{"description":"ok"}},"parameters":[{"name":"q","in":"nowhere"}]}}}}`}, "config.spec"},
		{map[string]any{"source": "inline", "spec": petSpec, "apiBasePath": "api"}, "config.apiBasePath"},
		{map[string]any{"source": "inline", "spec": petSpec, "blockOperation": "yes"}, "config.blockOperation"},
	}
	for _, c := range cases {
		err := policy.Check(policytest.Policy("spec-validation-flex", c.cfg))
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%v: error %v, want one naming %s", c.cfg["spec"] != nil, err, c.field)
		}
	}
}
