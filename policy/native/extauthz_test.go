package native_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/policy"
)

// authzServer is a real envoy.service.auth.v3 Authorization service on a
// loopback port: it allows a request carrying access-token: good (adding
// and removing headers as a real one does), denies with 401 and a body
// otherwise, and fails the RPC for access-token: boom.
type authzServer struct {
	authv3.UnimplementedAuthorizationServer
	mu   sync.Mutex
	last *authv3.CheckRequest
	addr string
}

func (s *authzServer) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	s.mu.Lock()
	s.last = req
	s.mu.Unlock()
	h := req.GetAttributes().GetRequest().GetHttp().GetHeaders()
	switch h["access-token"] {
	case "good":
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{
					{Header: &corev3.HeaderValue{Key: "x-user", Value: "jane"}},
					{Header: &corev3.HeaderValue{Key: "x-tag", Value: "authz"}, Append: wrapperspb.Bool(true)},
				},
				HeadersToRemove:      []string{"access-token"},
				ResponseHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-authz", Value: "ok"}}},
			}},
		}, nil
	case "boom":
		return nil, status.Error(codes.Internal, "authorization backend down")
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized},
			Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "www-authenticate", Value: `Token realm="authz"`}}},
			Body:    "who are you?",
		}},
	}, nil
}

func (s *authzServer) Last() *authv3.CheckRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func newAuthzServer(t testing.TB) *authzServer {
	t.Helper()
	s := &authzServer{}
	s.addr = policytest.ServeGRPC(t, func(g *grpc.Server) { authv3.RegisterAuthorizationServer(g, s) })
	return s
}

func TestNativeExtAuthzGRPC(t *testing.T) {
	as := newAuthzServer(t)
	up := policytest.NewUpstream(t)
	// The configuration as Flex's page shows it, quoted boolean included.
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("native-ext-authz-flex", `{
		"uri": "h2://`+as.addr+`", "serverType": "grpc", "includePeerCertificate": "true",
		"allowedHeaders": ["access-token", "x-tag"]}`))

	r := g.Get(t, "/orders?id=7", "access-token", "good", "x-tag", "client", "x-secret", "s3")
	policytest.WantStatus(t, r, 200)
	if r.Header.Get("X-Authz") != "ok" {
		t.Errorf("response_headers_to_add not on the client response: %v", r.Header)
	}
	got := up.LastHeader()
	if got.Get("X-User") != "jane" || got.Get("Access-Token") != "" {
		t.Errorf("upstream headers %v: want x-user set, access-token removed", got)
	}
	if tags := got.Values("X-Tag"); len(tags) != 2 || tags[0] != "client" || tags[1] != "authz" {
		t.Errorf("appended x-tag = %q, want [client authz]", tags)
	}
	req := as.Last().GetAttributes().GetRequest().GetHttp()
	if req.GetPath() != "/orders?id=7" || req.GetMethod() != "GET" {
		t.Errorf("check request path/method %q %q", req.GetPath(), req.GetMethod())
	}
	if _, leaked := req.GetHeaders()["x-secret"]; leaked {
		t.Errorf("a header outside allowedHeaders reached the service: %v", req.GetHeaders())
	}
	if as.Last().GetAttributes().GetSource().GetAddress().GetSocketAddress().GetAddress() != "127.0.0.1" {
		t.Errorf("source address missing: %v", as.Last().GetAttributes().GetSource())
	}

	r = g.Get(t, "/orders", "access-token", "bad")
	policytest.WantStatus(t, r, 401)
	if r.Body != "who are you?" || r.Header.Get("Www-Authenticate") != `Token realm="authz"` {
		t.Errorf("denied response %q %v, want the service's body and header", r.Body, r.Header)
	}
	// The RPC failing is status_on_error: 403, fail closed.
	r = g.Get(t, "/orders", "access-token", "boom")
	policytest.WantStatus(t, r, 403)
	policytest.WantErrorBody(t, r, "native-ext-authz-flex")
	if up.Hits() != 1 {
		t.Fatalf("upstream hits %d, want only the authorized request", up.Hits())
	}
	if d := g.Rec.All(); len(d) != 3 || d[0] != "native-ext-authz-flex=allowed" || d[1] != "native-ext-authz-flex=denied" || d[2] != "native-ext-authz-flex=error" {
		t.Errorf("decisions %v", d)
	}

	// Without allowedHeaders a gRPC service gets every client header.
	all := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("native-ext-authz-flex", map[string]any{"uri": "h2://" + as.addr}))
	policytest.WantStatus(t, all.Get(t, "/", "access-token", "good", "x-secret", "s3"), 200)
	if as.Last().GetAttributes().GetRequest().GetHttp().GetHeaders()["x-secret"] != "s3" {
		t.Errorf("default gRPC check lacks client headers: %v", as.Last().GetAttributes().GetRequest().GetHttp().GetHeaders())
	}
}

// TestNativeExtAuthzServiceDown: nothing listens at the URI; every request
// is refused (403), none reaches the upstream.
func TestNativeExtAuthzServiceDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	up := policytest.NewUpstream(t)
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("native-ext-authz-flex", map[string]any{"uri": "h2://" + addr, "requestTimeout": 2000}))
	policytest.WantStatus(t, g.Get(t, "/", "access-token", "good"), 403)
	if up.Hits() != 0 {
		t.Fatal("request reached the upstream with the authorization service down")
	}
}

func TestNativeExtAuthzHTTP(t *testing.T) {
	var mu sync.Mutex
	var seen *http.Request
	authz := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = r.Clone(context.Background())
		mu.Unlock()
		if r.Header.Get("X-Gateway-Key") != "k1" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("X-User", "jane")
		w.Header().Set("X-Tag", "authz")
		w.Header().Set("X-Session", "s-1")
		w.Header().Set("X-Internal", "never-forwarded")
		if r.Header.Get("Authorization") != "Bearer good" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="authz"`)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte("denied by authz"))
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(authz.Close)
	up := policytest.NewUpstream(t)
	g := policytest.NewGateway(t, policy.Env{}, up, policytest.Policy("native-ext-authz-flex", map[string]any{
		"uri": authz.URL + "/check", "serverType": "http", "serverVersion": "v3", "requestTimeout": 5000,
		"serviceRequestHeadersToAdd":             []map[string]string{{"key": "x-gateway-key", "value": "k1"}},
		"serviceResponseUpstreamHeaders":         []string{"x-user"},
		"serviceResponseUpstreamHeadersToAppend": []string{"x-tag"},
		"serviceResponseClientHeaders":           []string{"x-session"},
		"serviceResponseClientHeadersOnSuccess":  []string{"x-session"},
		"allowedHeaders":                         []string{"x-tenant"},
	}))
	r := g.Get(t, "/orders?id=7", "Authorization", "Bearer good", "X-Tenant", "acme", "X-Tag", "client", "X-Private", "p")
	policytest.WantStatus(t, r, 200)
	if r.Header.Get("X-Session") != "s-1" || r.Header.Get("X-Internal") != "" {
		t.Errorf("client response headers %v: want x-session only", r.Header)
	}
	got := up.LastHeader()
	if got.Get("X-User") != "jane" || strings.Join(got.Values("X-Tag"), ",") != "client,authz" {
		t.Errorf("upstream headers %v", got)
	}
	mu.Lock()
	if seen.URL.Path != "/check/orders" || seen.URL.RawQuery != "id=7" || seen.Header.Get("X-Tenant") != "acme" || seen.Header.Get("X-Private") != "" {
		t.Errorf("authorization request %s %v", seen.URL, seen.Header)
	}
	mu.Unlock()

	r = g.Get(t, "/orders", "Authorization", "Bearer bad")
	policytest.WantStatus(t, r, 401)
	if r.Body != "denied by authz" || r.Header.Get("Www-Authenticate") != `Bearer realm="authz"` || r.Header.Get("X-Session") != "s-1" || r.Header.Get("X-Internal") != "" {
		t.Errorf("denied response %q %v", r.Body, r.Header)
	}
	if up.Hits() != 1 {
		t.Fatalf("upstream hits %d, want 1", up.Hits())
	}
}

func TestNativeExtAuthzConfigErrors(t *testing.T) {
	d, _ := policy.Lookup("native-ext-authz-flex")
	for cfg, want := range map[string]string{
		`{}`:                                     "config.uri: required",
		`{"uri":"ftp://x:1"}`:                    "config.uri: scheme",
		`{"uri":"h2://x:1","serverType":"soap"}`: "config.serverType",
		`{"uri":"h2://x:1","serverVersion":"v2"}`:                                                              "config.serverVersion: v2 is not supported",
		`{"uri":"h2://x:1","requestTimeout":0}`:                                                                "config.requestTimeout",
		`{"uri":"h2://x:1","includePeerCertificate":"maybe"}`:                                                  "config.includePeerCertificate",
		`{"uri":"h2://x:1","allowedHeaders":["bad header"]}`:                                                   "config.allowedHeaders[0]",
		`{"uri":"http://x:1","serverType":"http","serviceRequestHeadersToAdd":[{"key":"k","value":"a\r\nb"}]}`: "config.serviceRequestHeadersToAdd[0].value",
		`{"uri":"h2://x:99999"}`:                                                                               "config.uri: port",
	} {
		err := d.Validate([]byte(cfg))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", cfg, err, want)
		}
	}
}

// TestNativeExtAuthzPeerCertificate: with includePeerCertificate the
// service gets the client's TLS certificate, URL-encoded PEM as Envoy
// sends it; without it, nothing.
func TestNativeExtAuthzPeerCertificate(t *testing.T) {
	as := newAuthzServer(t)
	up := policytest.NewUpstream(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "client-7"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	clientCert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	for _, include := range []bool{true, false} {
		target, _ := url.Parse(up.URL)
		p := policytest.Policy("native-ext-authz-flex", map[string]any{"uri": "h2://" + as.addr, "includePeerCertificate": include})
		d, _ := policy.Lookup(p.Name)
		mw, err := d.Build(policy.Env{API: policytest.API()}, p)
		if err != nil {
			t.Fatal(err)
		}
		gw := httptest.NewUnstartedServer(mw(httputil.NewSingleHostReverseProxy(target)))
		gw.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
		gw.StartTLS()
		client := gw.Client()
		client.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{clientCert}
		req, _ := http.NewRequest(http.MethodGet, gw.URL+"/", nil)
		req.Header.Set("access-token", "good")
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		gw.Close()
		if res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
		got := as.Last().GetAttributes().GetSource().GetCertificate()
		if !include {
			if got != "" {
				t.Errorf("certificate sent without includePeerCertificate")
			}
			continue
		}
		pemText, err := url.QueryUnescape(got)
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode([]byte(pemText))
		if blk == nil || !bytes.Equal(blk.Bytes, der) {
			t.Errorf("source.certificate %q is not the client's certificate", got)
		}
	}
}
