// Package extauthz is the agent's policy engine for Envoy: its external
// authorization service (envoy.service.auth.v3) and its external
// processing service (envoy.service.ext_proc.v3). For policies Envoy has
// no native filter for (client-id-enforcement, spike-control-flex,
// message-logging-flex, IP lists behind trusted proxies, JWT features
// jwt_authn lacks, header injection with expressions), the Envoy rendering
// is an ext_authz filter whose per-route context names the binding, and
// this service runs that binding's built-in middleware — the very code the
// built-in data plane runs — on a request rebuilt from Envoy's
// CheckRequest. Policies that also act on the response (an outbound header
// computed by an expression, a cache) are rendered as ext_proc filters
// instead, and extproc.go runs the same middleware across the request and
// the response Envoy streams to it.
package extauthz

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

// Server implements authv3.AuthorizationServer.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	shared policy.SharedStore
	log    *slog.Logger
	// OnDecision, when set, is called with every policy decision (the
	// agent counts flexgw_policy_decisions_total from it).
	OnDecision func(api, policyName, outcome string)

	mu    sync.RWMutex
	snap  *ir.Snapshot
	built map[string]http.Handler // by api|binding|policy, for snap
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// New returns a server; shared is the store clusterizable policies use.
func New(shared policy.SharedStore, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	return &Server{shared: shared, log: log.With("component", "extauthz"), built: map[string]http.Handler{}}
}

// Register adds the services (ext_authz and ext_proc) to a gRPC server
// (the agent's xDS server).
func (s *Server) Register(g *grpc.Server) {
	authv3.RegisterAuthorizationServer(g, s)
	extprocv3.RegisterExternalProcessorServer(g, s)
}

// Update switches to a new snapshot; middleware is rebuilt lazily.
func (s *Server) Update(snap *ir.Snapshot) {
	s.mu.Lock()
	s.snap = snap
	s.built = map[string]http.Handler{}
	s.mu.Unlock()
}

// passed marks that the chain reached its end (the request is allowed).
type passedKey struct{}

type outcome struct {
	passed bool
	req    *http.Request
}

func (s *Server) handler(api, binding, name string) (http.Handler, error) {
	key := api + "|" + binding + "|" + name
	s.mu.RLock()
	h, ok := s.built[key]
	snap := s.snap
	s.mu.RUnlock()
	if ok {
		return h, nil
	}
	if snap == nil {
		return nil, fmt.Errorf("no configuration applied yet")
	}
	p, a, svc := find(snap, api, binding, name)
	if p == nil {
		return nil, fmt.Errorf("binding %s of policy %s on api %s not in configuration version %d", binding, name, api, snap.Version)
	}
	d, ok := policy.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("policy %q not registered", name)
	}
	mw, err := d.Build(policy.Env{Snapshot: snap, API: a, Service: svc, Logger: s.log, Shared: s.shared}, p)
	if err != nil {
		return nil, err
	}
	h = mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch o := r.Context().Value(passedKey{}).(type) {
		case *outcome: // ext_authz: the request is allowed as it is now
			o.passed, o.req = true, r
		case *procCall: // ext_proc: the request goes on, the response comes back through here
			o.forward(w, r)
		}
	}))
	s.mu.Lock()
	if s.snap == snap {
		s.built[key] = h
	}
	s.mu.Unlock()
	return h, nil
}

// find locates a binding among an API's policies, its routes' and the
// services they reach.
func find(snap *ir.Snapshot, api, binding, name string) (*ir.Policy, *ir.API, *ir.Service) {
	match := func(ps []*ir.Policy) *ir.Policy {
		for _, p := range ps {
			if p.Binding == binding && p.Name == name {
				return p
			}
		}
		return nil
	}
	for _, a := range snap.APIs() {
		if a.Key() != api {
			continue
		}
		if p := match(a.Policies); p != nil {
			return p, a, nil
		}
		for _, r := range a.Routes {
			if p := match(r.Policies); p != nil {
				return p, a, nil
			}
			for _, d := range r.Destinations {
				if svc := snap.Service(d.Service); svc != nil {
					if p := match(svc.Policies); p != nil {
						return p, a, svc
					}
				}
			}
		}
	}
	return nil, nil, nil
}

// Check implements the Authorization service.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	attrs := req.GetAttributes()
	ext := attrs.GetContextExtensions()
	api, binding, name := ext[policy.ExtAuthzKeyAPI], ext[policy.ExtAuthzKeyBinding], ext[policy.ExtAuthzKeyPolicy]
	h, err := s.handler(api, binding, name)
	if err != nil {
		s.log.Error("ext_authz check cannot run", "api", api, "binding", binding, "policy", name, "err", err)
		return denied(http.StatusServiceUnavailable, nil, []byte(`{"error":"policy engine: binding unavailable","policy":"`+name+`"}`)), nil
	}
	r, err := buildRequest(ctx, attrs)
	if err != nil {
		return nil, err
	}
	orig := r.Header.Clone()
	o := &outcome{}
	rec := &recorder{api: api, s: s}
	r = r.WithContext(policy.WithRecorder(context.WithValue(r.Context(), passedKey{}, o), rec))
	w := &responseRecorder{header: http.Header{}}
	h.ServeHTTP(w, r)
	if !o.passed {
		code := w.code
		if code == 0 {
			code = http.StatusForbidden
		}
		return denied(code, w.header, w.body.Bytes()), nil
	}
	ok := &authv3.OkHttpResponse{}
	ok.Headers, ok.HeadersToRemove = headerChanges(orig, o.req.Header, false)
	for k, vs := range w.header {
		for _, v := range vs {
			ok.ResponseHeadersToAdd = append(ok.ResponseHeadersToAdd, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: strings.ToLower(k), Value: v}})
		}
	}
	return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.OK)}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok}}, nil
}

// headerChanges is what turns before into after: every value of a header
// that changed (the first replacing, the others appended) and the names
// that are gone. raw puts values in raw_value, as ext_proc wants them;
// ext_authz reads value.
func headerChanges(before, after http.Header, raw bool) (set []*corev3.HeaderValueOption, removed []string) {
	for k, vs := range after {
		if equal(before[k], vs) {
			continue
		}
		lk := strings.ToLower(k)
		for i, v := range vs {
			o := &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: lk}, AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD}
			if i == 0 {
				o.AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			}
			if raw {
				o.Header.RawValue = []byte(v)
			} else {
				o.Header.Value = v
			}
			set = append(set, o)
		}
	}
	for k := range before {
		if _, still := after[k]; !still {
			removed = append(removed, strings.ToLower(k))
		}
	}
	return set, removed
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func denied(code int, h http.Header, body []byte) *authv3.CheckResponse {
	d := &authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode(code)}, Body: string(body)}
	for k, vs := range h {
		for _, v := range vs {
			d.Headers = append(d.Headers, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: strings.ToLower(k), Value: v}})
		}
	}
	return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)}, HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: d}}
}

// buildRequest rebuilds the downstream request Envoy saw.
func buildRequest(ctx context.Context, attrs *authv3.AttributeContext) (*http.Request, error) {
	hr := attrs.GetRequest().GetHttp()
	path := hr.GetPath()
	if path == "" {
		path = "/"
	}
	// Renderings that inspect bodies ask Envoy for the buffered body
	// (with_request_body, pack_as_bytes); others get none.
	body := hr.GetRawBody()
	if len(body) == 0 && hr.GetBody() != "" {
		body = []byte(hr.GetBody())
	}
	var rd io.Reader
	if len(body) > 0 {
		rd = bytes.NewReader(body)
	}
	r, err := http.NewRequestWithContext(ctx, hr.GetMethod(), path, rd)
	if err != nil {
		return nil, fmt.Errorf("ext_authz request %q: %w", path, err)
	}
	r.RequestURI = path
	r.Host = hr.GetHost()
	r.Proto = hr.GetProtocol()
	for k, v := range hr.GetHeaders() {
		if strings.HasPrefix(k, ":") {
			continue
		}
		// Envoy joins repeated headers with ","; keep them as one value.
		r.Header.Set(k, v)
	}
	if sa := attrs.GetSource().GetAddress().GetSocketAddress(); sa != nil {
		r.RemoteAddr = net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
	}
	return r, nil
}

type recorder struct {
	api string
	s   *Server
}

func (r *recorder) Decide(p, outcome string) {
	if r.s.OnDecision != nil {
		r.s.OnDecision(r.api, p, outcome)
	}
}

// responseRecorder captures what a policy writes when it denies.
type responseRecorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *responseRecorder) Header() http.Header { return w.header }
func (w *responseRecorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *responseRecorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.body.Write(b)
}
