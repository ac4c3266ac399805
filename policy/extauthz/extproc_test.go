package extauthz_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
	"github.com/flexgw/flexgw/policy/extauthz"
	"github.com/flexgw/flexgw/sharedstore"
	"github.com/flexgw/flexgw/sharedstore/redistest"
)

// procServer serves the agent's ext_proc service for one API carrying ps,
// with shared as the shared store; it returns a client.
func procServer(t *testing.T, shared policy.SharedStore, ps ...*ir.Policy) extprocv3.ExternalProcessorClient {
	t.Helper()
	s := extauthz.New(shared, nil)
	s.Update(apiSnapshot(ps...))
	conn := serveGRPC(t, s)
	return extprocv3.NewExternalProcessorClient(conn)
}

// envoyProc is a stand-in for Envoy's ext_proc filter as the agent-run
// rendering configures it (request and response headers sent, the
// response body bufferedPartial, the binding in the initial metadata),
// written to envoy.service.ext_proc.v3: one stream per request.
type envoyProc struct {
	t      *testing.T
	stream extprocv3.ExternalProcessor_ProcessClient
}

func openProc(t *testing.T, c extprocv3.ExternalProcessorClient, binding, name string) *envoyProc {
	t.Helper()
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs(
		policy.ExtProcMetaAPI, "default/orders", policy.ExtProcMetaBinding, binding, policy.ExtProcMetaPolicy, name))
	st, err := c.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.CloseSend() })
	return &envoyProc{t: t, stream: st}
}

func hmap(kv ...string) *corev3.HeaderMap {
	m := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return m
}

func (e *envoyProc) send(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	e.t.Helper()
	if err := e.stream.Send(req); err != nil {
		e.t.Fatal(err)
	}
	res, err := e.stream.Recv()
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *envoyProc) requestHeaders(method, path string, kv ...string) *extprocv3.ProcessingResponse {
	attrs, _ := structpb.NewStruct(map[string]any{"source.address": "203.0.113.9:41000"})
	return e.send(&extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: hmap(append([]string{":method", method, ":path", path, ":authority", "api.example", ":scheme", "http"}, kv...)...), EndOfStream: true,
		}},
		Attributes: map[string]*structpb.Struct{"envoy.filters.http.ext_proc": attrs},
	})
}

func (e *envoyProc) responseHeaders(status int, eos bool, kv ...string) *extprocv3.ProcessingResponse {
	return e.send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
		Headers: hmap(append([]string{":status", strconv.Itoa(status)}, kv...)...), EndOfStream: eos,
	}}})
}

func (e *envoyProc) responseBody(b string, eos bool) *extprocv3.ProcessingResponse {
	return e.send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: []byte(b), EndOfStream: eos}}})
}

// set is the value a mutation sets for key ("" if none).
func set(m *extprocv3.HeaderMutation, key string) string {
	for _, o := range m.GetSetHeaders() {
		if o.GetHeader().GetKey() == key {
			if v := o.GetHeader().GetRawValue(); len(v) > 0 {
				return string(v)
			}
			return o.GetHeader().GetValue()
		}
	}
	return ""
}

// header-injection-flex with expressions in both directions, as Flex's
// page shows it: the inbound header reaches the request Envoy forwards,
// the outbound one the response, each computed by the agent.
func TestExtProcHeaderInjectionOutboundExpression(t *testing.T) {
	c := procServer(t, nil, pol("header-injection-flex", "default/inj", map[string]any{
		"inboundHeaders":  []map[string]string{{"key": "new-inbound-header", "value": "#[attributes.requestPath]"}},
		"outboundHeaders": []map[string]string{{"key": "new-outbound-header", "value": "#[attributes.requestPath]"}, {"key": "x-status", "value": "#[attributes.statusCode]"}},
	}))
	e := openProc(t, c, "default/inj", "header-injection-flex")
	res := e.requestHeaders("GET", "/orders/7?x=1")
	if got := set(res.GetRequestHeaders().GetResponse().GetHeaderMutation(), "new-inbound-header"); got != "/orders/7" {
		t.Fatalf("inbound header %q (%v)", got, res)
	}
	res = e.responseHeaders(201, false, "content-type", "text/plain")
	m := res.GetResponseHeaders().GetResponse().GetHeaderMutation()
	if set(m, "new-outbound-header") != "/orders/7" || set(m, "x-status") != "201" {
		t.Fatalf("outbound headers: %v", res)
	}
	if set(m, "content-type") != "" || len(m.GetRemoveHeaders()) != 0 {
		t.Fatalf("untouched upstream headers mutated: %v", m)
	}
}

// http-caching-flex on Envoy: the first GET goes upstream and its response
// is stored from the body Envoy streams; the second is answered by the
// agent (immediate response) without reaching the upstream; a body Envoy
// sent only partially is never stored.
func TestExtProcHTTPCaching(t *testing.T) {
	c := procServer(t, nil, pol("http-caching-flex", "default/cache", map[string]any{"ttl": 60}))
	miss := func(path, body string, complete bool) {
		t.Helper()
		e := openProc(t, c, "default/cache", "http-caching-flex")
		if res := e.requestHeaders("GET", path); res.GetRequestHeaders() == nil {
			t.Fatalf("%s: want the request to go upstream, got %v", path, res)
		}
		if res := e.responseHeaders(200, false, "content-type", "text/plain", "cache-control", "max-age=60"); res.GetResponseHeaders() == nil {
			t.Fatalf("%s: response headers: %v", path, res)
		}
		res := e.responseBody(body, complete)
		if res.GetResponseBody() == nil || res.GetResponseBody().GetResponse().GetBodyMutation() != nil {
			t.Fatalf("%s: the body must pass unchanged: %v", path, res)
		}
	}
	hit := func(path string) *extprocv3.ImmediateResponse {
		t.Helper()
		e := openProc(t, c, "default/cache", "http-caching-flex")
		return e.requestHeaders("GET", path).GetImmediateResponse()
	}
	miss("/orders/1", "order one", true)
	im := hit("/orders/1")
	if im == nil || im.GetStatus().GetCode() != 200 || string(im.GetBody()) != "order one" || set(im.GetHeaders(), "content-type") != "text/plain" || set(im.GetHeaders(), "age") == "" {
		t.Fatalf("second GET not served from the cache: %v", im)
	}
	miss("/orders/big", strings.Repeat("x", 100), false)
	if im := hit("/orders/big"); im != nil {
		t.Fatalf("a partially sent body was stored: %v", im)
	}
}

// distributed: true on Envoy: two agents (two replicas) sharing one real
// redis-server share the cache, and the invalidation header purges it.
func TestExtProcHTTPCachingDistributed(t *testing.T) {
	srv := redistest.Start(t)
	cfg := map[string]any{"httpCachingKey": "#[attributes.method ++ attributes.requestPath]", "useHttpCacheHeaders": true,
		"maxCacheEntries": 100, "ttl": 600, "distributed": true, "persistCache": true, "invalidationHeader": "AGW-CACHE-CONTROL"}
	var cs []extprocv3.ExternalProcessorClient
	for range 2 {
		store, err := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		cs = append(cs, procServer(t, store, pol("http-caching-flex", "default/cache", cfg)))
	}
	e := openProc(t, cs[0], "default/cache", "http-caching-flex")
	e.requestHeaders("GET", "/shared")
	e.responseHeaders(200, false, "cache-control", "max-age=60")
	e.responseBody(`{"n":1}`, true)
	im := openProc(t, cs[1], "default/cache", "http-caching-flex").requestHeaders("GET", "/shared").GetImmediateResponse()
	if im == nil || string(im.GetBody()) != `{"n":1}` {
		t.Fatalf("replica 2 did not serve replica 1's entry: %v", im)
	}
	res := openProc(t, cs[1], "default/cache", "http-caching-flex").requestHeaders("GET", "/shared", "agw-cache-control", "invalidate")
	if res.GetRequestHeaders() == nil {
		t.Fatalf("invalidating request not sent upstream: %v", res)
	}
	if im := openProc(t, cs[0], "default/cache", "http-caching-flex").requestHeaders("GET", "/shared").GetImmediateResponse(); im != nil {
		t.Fatalf("entry survived invalidation on the other replica: %v", im)
	}
}

// A denial by the middleware is an immediate response; an unknown binding
// fails closed with 503.
func TestExtProcDenialsAndUnknownBinding(t *testing.T) {
	c := procServer(t, nil, pol("http-basic-authentication-flex", "default/basic", map[string]any{"username": "u", "password": "p"}))
	im := openProc(t, c, "default/basic", "http-basic-authentication-flex").requestHeaders("GET", "/x").GetImmediateResponse()
	if im == nil || im.GetStatus().GetCode() != 401 {
		t.Fatalf("unauthenticated request: %v", im)
	}
	im = openProc(t, c, "default/nope", "http-caching-flex").requestHeaders("GET", "/x").GetImmediateResponse()
	var body map[string]any
	if im == nil || im.GetStatus().GetCode() != 503 || json.Unmarshal(im.GetBody(), &body) != nil {
		t.Fatalf("unknown binding: %v", im)
	}
}
