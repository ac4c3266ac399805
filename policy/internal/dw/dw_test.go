package dw

import (
	"net/http/httptest"
	"testing"
)

func TestExpressions(t *testing.T) {
	r := httptest.NewRequest("POST", "http://gw.example/orders/7?id=42&x=y", nil)
	r.RemoteAddr = "192.0.2.1:5555"
	r.Header.Set("X-Team", "blue")
	r.Header.Add("X-Multi", "a")
	r.Header.Add("X-Multi", "b")
	r = r.WithContext(WithAuthentication(r.Context(), &Authentication{ClientID: "app-1", Claims: map[string]any{"sub": "alice", "roles": []any{"a", "b"}, "n": 3.0}}))
	env := &Env{Request: r, API: "default/orders", Status: 201}
	for src, want := range map[string]string{
		"plain literal":                                                 "plain literal",
		"#[attributes.method]":                                          "POST",
		"#[attributes.requestPath]":                                     "/orders/7",
		"#[attributes.requestUri]":                                      "/orders/7?id=42&x=y",
		"#[attributes.queryString]":                                     "id=42&x=y",
		"#[attributes.headers['x-team']]":                               "blue",
		`#[attributes.headers["X-TEAM"]]`:                               "blue",
		"#[attributes.headers['x-multi']]":                              "a,b",
		"#[attributes.headers['missing']]":                              "",
		"#[attributes.queryParams['id']]":                               "42",
		"#[attributes.remoteAddress]":                                   "192.0.2.1",
		"#[attributes.host]":                                            "gw.example",
		"#[attributes.statusCode]":                                      "201",
		"#[authentication.clientId]":                                    "app-1",
		"#[authentication.properties.claims.sub]":                       "alice",
		"#[vars.claimSet.roles[1]]":                                     "b",
		"#[vars.claimSet.n]":                                            "3",
		"#[vars.apiName]":                                               "default/orders",
		"#['id=' ++ attributes.queryParams['id'] ++ '!']":               "id=42!",
		"#[attributes.method == 'POST']":                                "true",
		"#[attributes.method != 'POST']":                                "false",
		"#[attributes.method == 'POST' and vars.claimSet.sub == 'bob']": "false",
		"#[attributes.method == 'GET' or vars.claimSet.sub == 'alice']": "true",
		"#[not (attributes.method == 'GET')]":                           "true",
		"#[payload]":                                                    "",
		"#[vars.requestDisposition]":                                    "PROCESSED",
	} {
		e, err := Compile(src)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if got := e.String(env); got != want {
			t.Errorf("%s = %q, want %q", src, got, want)
		}
	}
	for _, bad := range []string{"#[attributes.headers['x']", "#[foo.bar]", "#[attributes.]", "#['unterminated]", "#[attributes.method ==]", "#[a $ b]"} {
		if _, err := Compile(bad); err == nil {
			t.Errorf("%s: compiled, want an error", bad)
		}
	}
}
