package extauthz_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
	"github.com/flexgw/flexgw/policy/extauthz"
)

func pol(name, binding string, cfg any) *ir.Policy {
	b, _ := json.Marshal(cfg)
	return &ir.Policy{Name: name, Binding: binding, Config: b}
}

func snapshot() *ir.Snapshot {
	api := &ir.API{Name: "orders", Namespace: "default", BasePath: "/", Policies: []*ir.Policy{
		pol("client-id-enforcement", "default/cid", map[string]any{"credentials": []map[string]string{{"clientId": "app-1", "clientSecret": "s3cret"}}}),
		pol("header-injection-flex", "default/inj", map[string]any{"inboundHeaders": []map[string]string{{"key": "x-path", "value": "#[attributes.requestPath]"}}}),
		pol("ip-allowlist-flex", "default/ips", map[string]any{"ips": []string{"203.0.113.0/24"}, "trustedProxies": []string{"10.0.0.0/8"}}),
		pol("jwt-validation-flex", "default/jwt", map[string]any{"signingMethod": "hmac", "textKey": hmacSecret,
			"mandatoryCustomClaims": []map[string]string{{"key": "scope", "value": "read"}},
			"claimsToHeaders":       []map[string]string{{"claim": "sub", "header": "x-user"}}}),
	}}
	return &ir.Snapshot{Version: 1, Listeners: []*ir.Listener{{Name: "http_0.0.0.0_8081", APIs: []*ir.API{api}}}}
}

type decisions struct {
	mu  sync.Mutex
	all []string
}

func start(t *testing.T) (authv3.AuthorizationClient, *decisions) {
	t.Helper()
	s := extauthz.New(nil, nil)
	d := &decisions{}
	s.OnDecision = func(api, p, outcome string) {
		d.mu.Lock()
		d.all = append(d.all, api+" "+p+" "+outcome)
		d.mu.Unlock()
	}
	s.Update(snapshot())
	return authv3.NewAuthorizationClient(serveGRPC(t, s)), d
}

// serveGRPC serves s's services on a free loopback port and returns a
// client connection to them; both end with the test.
func serveGRPC(t *testing.T, s *extauthz.Server) *grpc.ClientConn {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// apiSnapshot is a snapshot with one API, default/orders, carrying ps.
func apiSnapshot(ps ...*ir.Policy) *ir.Snapshot {
	api := &ir.API{Name: "orders", Namespace: "default", BasePath: "/", Policies: ps}
	return &ir.Snapshot{Version: 1, Listeners: []*ir.Listener{{Name: "http_0.0.0.0_8081", APIs: []*ir.API{api}}}}
}

func check(binding, name, peer string, headers map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: peer, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/orders/1?x=y", Host: "gw.example", Protocol: "HTTP/1.1", Headers: headers,
		}},
		ContextExtensions: map[string]string{policy.ExtAuthzKeyAPI: "default/orders", policy.ExtAuthzKeyBinding: binding, policy.ExtAuthzKeyPolicy: name},
	}}
}

func TestCheckRunsTheBuiltInMiddleware(t *testing.T) {
	c, d := start(t)
	ctx := context.Background()
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("app-1:s3cret"))
	r, err := c.Check(ctx, check("default/cid", "client-id-enforcement", "127.0.0.1", map[string]string{"authorization": auth}))
	if err != nil {
		t.Fatal(err)
	}
	if r.GetOkResponse() == nil {
		t.Fatalf("valid client denied: %v", r)
	}
	r, _ = c.Check(ctx, check("default/cid", "client-id-enforcement", "127.0.0.1", nil))
	den := r.GetDeniedResponse()
	if den == nil || den.GetStatus().GetCode() != 401 || !strings.Contains(den.GetBody(), "client-id-enforcement") {
		t.Fatalf("missing credentials: %v", r)
	}
	d.mu.Lock()
	got := strings.Join(d.all, ";")
	d.mu.Unlock()
	if !strings.Contains(got, "default/orders client-id-enforcement allowed") || !strings.Contains(got, "default/orders client-id-enforcement denied") {
		t.Fatalf("decisions %q", got)
	}

	r, _ = c.Check(ctx, check("default/inj", "header-injection-flex", "127.0.0.1", nil))
	ok := r.GetOkResponse()
	if ok == nil || len(ok.Headers) != 1 || ok.Headers[0].GetHeader().GetKey() != "x-path" || ok.Headers[0].GetHeader().GetValue() != "/orders/1" {
		t.Fatalf("header injection: %v", r)
	}

	// Trusted proxy peer: the X-Forwarded-For client decides.
	r, _ = c.Check(ctx, check("default/ips", "ip-allowlist-flex", "10.1.1.1", map[string]string{"x-forwarded-for": "203.0.113.5"}))
	if r.GetOkResponse() == nil {
		t.Fatalf("allowed client via trusted proxy denied: %v", r)
	}
	// Untrusted peer: the spoofed header is ignored.
	r, _ = c.Check(ctx, check("default/ips", "ip-allowlist-flex", "198.51.100.1", map[string]string{"x-forwarded-for": "203.0.113.5"}))
	if r.GetDeniedResponse().GetStatus().GetCode() != 403 {
		t.Fatalf("spoofed XFF accepted: %v", r)
	}

	// An unknown binding fails closed with 503.
	r, _ = c.Check(ctx, check("default/nope", "client-id-enforcement", "127.0.0.1", nil))
	if r.GetDeniedResponse().GetStatus().GetCode() != 503 {
		t.Fatalf("unknown binding: %v", r)
	}
}

const hmacSecret = "0123456789abcdef0123456789abcdef"

func hs256(claims map[string]any) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	in := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	m := hmac.New(sha256.New, []byte(hmacSecret))
	m.Write([]byte(in))
	return in + "." + enc.EncodeToString(m.Sum(nil))
}

// JWT features jwt_authn lacks (custom claims) run in the agent: the
// verdict and the forwarded claim header come back to Envoy.
func TestCheckJWTCustomClaims(t *testing.T) {
	c, _ := start(t)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour).Unix()
	r, err := c.Check(ctx, check("default/jwt", "jwt-validation-flex", "127.0.0.1",
		map[string]string{"authorization": "Bearer " + hs256(map[string]any{"sub": "alice", "scope": "read", "exp": exp}), "x-user": "mallory"}))
	if err != nil {
		t.Fatal(err)
	}
	ok := r.GetOkResponse()
	if ok == nil {
		t.Fatalf("valid token denied: %v", r)
	}
	var user string
	for _, h := range ok.Headers {
		if h.GetHeader().GetKey() == "x-user" {
			user = h.GetHeader().GetValue()
		}
	}
	if user != "alice" {
		t.Fatalf("x-user forwarded as %q, want alice: %v", user, ok)
	}
	r, _ = c.Check(ctx, check("default/jwt", "jwt-validation-flex", "127.0.0.1",
		map[string]string{"authorization": "Bearer " + hs256(map[string]any{"sub": "alice", "scope": "admin", "exp": exp})}))
	if d := r.GetDeniedResponse(); d == nil || d.GetStatus().GetCode() != 401 {
		t.Fatalf("wrong scope: %v", r)
	}
}
