package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/internal/slapdtest"
)

// e2eAuthz is a real envoy.service.auth.v3 service: access-token: good
// is allowed (and tagged x-authz-user), anything else denied with 401.
type e2eAuthz struct {
	authv3.UnimplementedAuthorizationServer
}

func (e2eAuthz) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	if req.GetAttributes().GetRequest().GetHttp().GetHeaders()["access-token"] == "good" {
		return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.OK)}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-authz-user", Value: "jane"}}},
		}}}, nil
	}
	return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)}, HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
		Status: &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized}, Body: "denied by authz",
	}}}, nil
}

// e2eProc is a real envoy.service.ext_proc.v3 processor: it adds x-proc to
// the request headers and upper-cases request body chunks.
type e2eProc struct {
	extprocv3.UnimplementedExternalProcessorServer
}

func (e2eProc) Process(st extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := st.Recv()
		if err != nil {
			return nil
		}
		res := &extprocv3.ProcessingResponse{}
		switch {
		case req.GetRequestHeaders() != nil:
			res.Response = &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{
				HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-proc", RawValue: []byte("1")}}}},
			}}}
		case req.GetRequestBody() != nil:
			res.Response = &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
				BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: bytes.ToUpper(req.GetRequestBody().GetBody())}},
			}}}
		case req.GetRequestTrailers() != nil:
			res.Response = &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}
		case req.GetResponseHeaders() != nil:
			res.Response = &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}
		case req.GetResponseBody() != nil:
			res.Response = &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}
		default:
			continue
		}
		if st.Send(res) != nil {
			return nil
		}
	}
}

// TestServicePoliciesFromFlexDocs runs the four policies that call another
// server through the real binary, each configured exactly as its Flex
// Local Mode page shows (policy/testdata/flexdocs), the page's hosts
// replaced by real peers on loopback: a slapd, an ext_authz and an ext_proc
// gRPC service, and a stand-in OpenID provider.
func TestServicePoliciesFromFlexDocs(t *testing.T) {
	// The LDAP page's example binds as cn=admin,dc=example,dc=org with
	// password admin and searches dc=example,dc=org's subtree: the test
	// directory's root account and suffix.
	dir := slapdtest.Start(t, `dn: dc=example,dc=org
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
cn: Jane
sn: Doe
userPassword: jane-secret
`)
	authz := policytest.ServeGRPC(t, func(g *grpc.Server) { authv3.RegisterAuthorizationServer(g, e2eAuthz{}) })
	proc := policytest.ServeGRPC(t, func(g *grpc.Server) { extprocv3.RegisterExternalProcessorServer(g, e2eProc{}) })
	// A stand-in OpenID provider: Discovery and an RFC 7662 endpoint.
	var op *httptest.Server
	op = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": op.URL, "jwks_uri": op.URL + "/jwks", "introspection_endpoint": op.URL + "/introspect"})
		case "/introspect":
			_ = r.ParseForm()
			if r.PostForm.Get("client_secret") != "gw-secret" {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
				return
			}
			if r.PostForm.Get("token") == "good" {
				_ = json.NewEncoder(w).Encode(map[string]any{"active": true, "scope": "read", "client_id": "app", "uid": "jane", "exp": time.Now().Add(time.Hour).Unix()})
				return
			}
			_, _ = w.Write([]byte(`{"active":false}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(op.Close)
	up := startUpstream(t, "up", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s proc=%s authz=%s agw=%s body=%s", r.URL.Path, r.Header.Get("X-Proc"), r.Header.Get("X-Authz-User"), r.Header.Get("X-Agw-Uid"), b)
	})

	port := freePort(t)
	fixture := func(name string, replace ...string) string {
		b, err := os.ReadFile(filepath.Join("../../policy/testdata/flexdocs", name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "http://0.0.0.0:8081/", fmt.Sprintf("http://127.0.0.1:%d/", port))
		s = strings.ReplaceAll(s, "http://127.0.0.1:9000", up.URL)
		for i := 0; i+1 < len(replace); i += 2 {
			if !strings.Contains(s, replace[i]) {
				t.Fatalf("%s: fixture has no %q", name, replace[i])
			}
			s = strings.ReplaceAll(s, replace[i], replace[i+1])
		}
		return s
	}
	oidcDoc := fixture("openidconnect-access-token-enforcement-flex")
	cfg := writeConfig(t, map[string]string{
		"ldap.yaml":     fixture("ldap-authentication-flex", "ldap://localhost:369", dir.URL),
		"extauthz.yaml": fixture("native-ext-authz-flex", "h2://ext-authz-grpc-service:9001", "h2://"+authz),
		"extproc.yaml":  fixture("native-ext-proc-flex", "h2://ext-proc.example.com:9002", "h2://"+proc),
		"oidc.yaml":     oidcDoc,
	})
	// Flex's OIDC configuration names no provider: valid, with a warning.
	out, err := exec.Command(flexgwBin, "validate", cfg).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("config.issuer")) {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	// The same configuration, the provider added (flexgw's fields).
	writeFile(t, filepath.Join(cfg, "oidc.yaml"), oidcDoc+fmt.Sprintf("        issuer: %s\n        clientId: gateway\n        clientSecret: gw-secret\n", op.URL))
	if out, err := exec.Command(flexgwBin, "validate", cfg).CombinedOutput(); err != nil {
		t.Fatalf("validate with issuer: %v\n%s", err, out)
	}
	startGateway(t, cfg)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	auth := func(u, p string) string {
		req, _ := http.NewRequest(http.MethodGet, "http://x", nil)
		req.SetBasicAuth(u, p)
		return req.Header.Get("Authorization")
	}
	if code, body, h := get(t, base+"/ldap/orders", "Authorization", auth("jane", "jane-secret")); code != 200 {
		t.Errorf("ldap, right password: %d %s %v", code, body, h)
	}
	if code, _, h := get(t, base+"/ldap/orders", "Authorization", auth("jane", "wrong")); code != 401 || h.Get("Www-Authenticate") != `Basic realm="mule-realm"` {
		t.Errorf("ldap, wrong password: %d %v", code, h)
	}
	if code, body, _ := get(t, base+"/extauthz/orders", "access-token", "good"); code != 200 || !strings.Contains(body, "authz=jane") {
		t.Errorf("ext_authz allowed: %d %s", code, body)
	}
	if code, body, _ := get(t, base+"/extauthz/orders", "access-token", "bad"); code != 401 || body != "denied by authz" {
		t.Errorf("ext_authz denied: %d %q", code, body)
	}
	res, err := http.Post(base+"/extproc/orders", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(b), "proc=1") || !strings.Contains(string(b), "body=HELLO") {
		t.Errorf("ext_proc: %d %s", res.StatusCode, b)
	}
	// Flex's example wants "read write" with OR: read is enough; uid is exposed.
	if code, body, _ := get(t, base+"/oidc/orders", "Authorization", "Bearer good"); code != 200 || !strings.Contains(body, "agw=jane") {
		t.Errorf("oidc good token: %d %s", code, body)
	}
	if code, _, _ := get(t, base+"/oidc/orders", "Authorization", "Bearer forged"); code != 401 {
		t.Errorf("oidc unknown token: %d, want 401", code)
	}
}
