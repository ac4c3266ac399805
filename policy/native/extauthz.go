package native

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"golang.org/x/net/http/httpguts"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

// nativeExtAuthzConfig is native-ext-authz-flex's configuration, field for
// field as Flex documents it: the request is authorized by an external
// gRPC (envoy.service.auth.v3) or HTTP service, as Envoy's ext_authz
// filter does.
type nativeExtAuthzConfig struct {
	URI                                    string          `json:"uri"`
	ServerType                             string          `json:"serverType"`
	ServerVersion                          string          `json:"serverVersion"`
	ServiceRequestHeadersToAdd             []headerKV2     `json:"serviceRequestHeadersToAdd"`
	ServiceResponseUpstreamHeaders         []string        `json:"serviceResponseUpstreamHeaders"`
	ServiceResponseUpstreamHeadersToAppend []string        `json:"serviceResponseUpstreamHeadersToAppend"`
	ServiceResponseClientHeaders           []string        `json:"serviceResponseClientHeaders"`
	ServiceResponseClientHeadersOnSuccess  []string        `json:"serviceResponseClientHeadersOnSuccess"`
	RequestTimeout                         policy.FlexInt  `json:"requestTimeout"` // milliseconds
	IncludePeerCertificate                 policy.FlexBool `json:"includePeerCertificate"`
	AllowedHeaders                         []string        `json:"allowedHeaders"`
}

// headerKV2 is one key/value pair of serviceRequestHeadersToAdd.
type headerKV2 struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type nativeExtAuthz struct{}

func init() { policy.Register(nativeExtAuthz{}) }

func (nativeExtAuthz) Name() string { return "native-ext-authz-flex" }

// compiledExtAuthz is a validated native-ext-authz-flex configuration.
type compiledExtAuthz struct {
	uri     serviceURI
	grpc    bool
	timeout time.Duration
	peerCrt bool
	// allowed is the lower-cased allowedHeaders; nil means the server
	// type's default (every header for gRPC, none for HTTP).
	allowed map[string]bool
	// addToCheck are serviceRequestHeadersToAdd (HTTP servers only).
	addToCheck []headerKV2
	// Matched, lower-cased header names of the HTTP service's answer.
	upstream, upstreamAppend, client, clientOnSuccess []string
}

// headerList lower-cases and checks a list of header names.
func headerList(field string, in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for i, h := range in {
		h = strings.TrimSpace(h)
		if !httpguts.ValidHeaderFieldName(h) {
			return nil, policy.FieldErr(fmt.Sprintf("%s[%d]", field, i), "%q is not a valid header name", h)
		}
		out = append(out, strings.ToLower(h))
	}
	return out, nil
}

func parseNativeExtAuthz(raw json.RawMessage) (*compiledExtAuthz, error) {
	var c nativeExtAuthzConfig
	if err := policy.DecodeConfig(raw, &c); err != nil {
		return nil, err
	}
	out := &compiledExtAuthz{timeout: 5 * time.Second, peerCrt: c.IncludePeerCertificate.Or(false)}
	switch strings.ToLower(c.ServerType) {
	case "", "grpc":
		out.grpc = true
	case "http":
	default:
		return nil, policy.FieldErr("serverType", "must be grpc or http, got %q", c.ServerType)
	}
	var err error
	if out.uri, err = parseServiceURI("uri", c.URI, out.grpc); err != nil {
		return nil, err
	}
	switch strings.ToLower(c.ServerVersion) {
	case "", "v3":
	case "v2":
		// Envoy removed the v2 transport API in 1.18; no current server
		// or Envoy speaks it.
		return nil, policy.FieldErr("serverVersion", "v2 is not supported (Envoy removed the v2 API in 1.18): use v3")
	default:
		return nil, policy.FieldErr("serverVersion", "must be v3, got %q", c.ServerVersion)
	}
	if c.RequestTimeout.Set {
		if c.RequestTimeout.V <= 0 {
			return nil, policy.FieldErr("requestTimeout", "must be > 0 milliseconds, got %d", c.RequestTimeout.V)
		}
		out.timeout = time.Duration(c.RequestTimeout.V) * time.Millisecond
	}
	if c.AllowedHeaders != nil {
		names, err := headerList("allowedHeaders", c.AllowedHeaders)
		if err != nil {
			return nil, err
		}
		out.allowed = map[string]bool{}
		for _, n := range names {
			out.allowed[n] = true
		}
	}
	for i, h := range c.ServiceRequestHeadersToAdd {
		f := fmt.Sprintf("serviceRequestHeadersToAdd[%d]", i)
		if !httpguts.ValidHeaderFieldName(h.Key) {
			return nil, policy.FieldErr(f+".key", "%q is not a valid header name", h.Key)
		}
		if !httpguts.ValidHeaderFieldValue(h.Value) {
			return nil, policy.FieldErr(f+".value", "contains characters not allowed in an HTTP header value")
		}
	}
	out.addToCheck = c.ServiceRequestHeadersToAdd
	lists := []struct {
		field string
		in    []string
		into  *[]string
	}{
		{"serviceResponseUpstreamHeaders", c.ServiceResponseUpstreamHeaders, &out.upstream},
		{"serviceResponseUpstreamHeadersToAppend", c.ServiceResponseUpstreamHeadersToAppend, &out.upstreamAppend},
		{"serviceResponseClientHeaders", c.ServiceResponseClientHeaders, &out.client},
		{"serviceResponseClientHeadersOnSuccess", c.ServiceResponseClientHeadersOnSuccess, &out.clientOnSuccess},
	}
	for _, l := range lists {
		if l.in == nil {
			continue
		}
		if *l.into, err = headerList(l.field, l.in); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Validate implements Definition.
func (nativeExtAuthz) Validate(raw json.RawMessage) error {
	_, err := parseNativeExtAuthz(raw)
	return err
}

// SecretFields implements Secrets: headers added to the authorization
// request usually carry the gateway's credential for the service.
func (nativeExtAuthz) SecretFields() []string {
	return []string{"serviceRequestHeadersToAdd.*.value"}
}

// authzVerdict is the service's answer, in the terms both server types share.
type authzVerdict struct {
	allow bool
	// status, hdr, body: the denied response (status 0 means 403).
	status int
	body   string
	// Upstream request changes (allowed) and client response headers
	// (denied: on the denial; allowed: on the upstream's response).
	setUp, appendUp http.Header
	removeUp        []string
	clientHdr       http.Header
	appendClient    http.Header
	setQuery        url.Values
	removeQuery     []string
}

// Build implements Definition.
func (d nativeExtAuthz) Build(env policy.Env, p *ir.Policy) (policy.Middleware, error) {
	c, err := parseNativeExtAuthz(p.Config)
	if err != nil {
		return nil, err
	}
	name := d.Name()
	log := policy.Logger(env).With("policy", name, "binding", p.Binding)
	var check func(r *http.Request) (*authzVerdict, error)
	if c.grpc {
		conn, err := serviceConn(env, c.uri)
		if err != nil {
			return nil, err
		}
		client := authv3.NewAuthorizationClient(conn)
		check = func(r *http.Request) (*authzVerdict, error) { return c.checkGRPC(r, client) }
	} else {
		hc, err := policy.PolicyCallClient(env, c.timeout)
		if err != nil {
			return nil, err
		}
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		check = func(r *http.Request) (*authzVerdict, error) { return c.checkHTTP(r, hc) }
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			v, err := check(r)
			if err != nil {
				// Envoy's status_on_error default, failure_mode_allow false.
				log.Warn("authorization service failed", "uri", c.uri.raw, "err", err)
				policy.Deny(w, r, name, policy.Error, http.StatusForbidden, "forbidden: authorization service unavailable")
				return
			}
			if !v.allow {
				h := w.Header()
				for k, vs := range v.clientHdr {
					h[k] = vs
				}
				status := v.status
				if status == 0 {
					status = http.StatusForbidden
				}
				if v.body == "" && h.Get("Content-Type") == "" {
					policy.Deny(w, r, name, policy.Denied, status, "forbidden: denied by the authorization service")
					return
				}
				h.Del("Content-Length")
				policy.Decide(r, name, policy.Denied)
				w.WriteHeader(status)
				_, _ = io.WriteString(w, v.body)
				return
			}
			applyAuthzToRequest(r, v)
			policy.Decide(r, name, policy.Allowed)
			if len(v.clientHdr) > 0 || len(v.appendClient) > 0 {
				w = policy.OnResponseHeader(w, func(_ int, h http.Header) {
					for k, vs := range v.clientHdr {
						h[k] = vs
					}
					for k, vs := range v.appendClient {
						h[k] = append(h[k], vs...)
					}
				})
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

// applyAuthzToRequest makes the authorized request what the service said.
func applyAuthzToRequest(r *http.Request, v *authzVerdict) {
	for _, k := range v.removeUp {
		if k == "host" || strings.HasPrefix(k, ":") {
			continue // Envoy ignores pseudo headers and Host here
		}
		r.Header.Del(k)
	}
	for k, vs := range v.setUp {
		r.Header[k] = vs
	}
	for k, vs := range v.appendUp {
		r.Header[k] = append(r.Header[k], vs...)
	}
	if len(v.setQuery) > 0 || len(v.removeQuery) > 0 {
		q := r.URL.Query()
		for _, k := range v.removeQuery {
			q.Del(k)
		}
		for k, vs := range v.setQuery {
			q[k] = vs
		}
		r.URL.RawQuery = q.Encode()
	}
}

// checkRequest is Envoy's CheckRequest for r: source and destination
// addresses, the request line and its headers (all of them, or
// allowedHeaders), and with includePeerCertificate the client's
// certificate, URL-encoded PEM as Envoy sends it.
func (c *compiledExtAuthz) checkRequest(r *http.Request) *authv3.CheckRequest {
	hdr := make(map[string]string, len(r.Header)+4)
	add := func(k, v string) {
		if c.allowed != nil && !c.allowed[k] {
			return
		}
		if old, ok := hdr[k]; ok {
			v = old + "," + v
		}
		hdr[k] = v
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	add(":authority", r.Host)
	add(":method", r.Method)
	add(":path", r.URL.RequestURI())
	add(":scheme", scheme)
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		for _, v := range vs {
			add(lk, v)
		}
	}
	size := r.ContentLength
	if size < 0 {
		size = -1
	}
	src := &authv3.AttributeContext_Peer{Address: socketAddress(r.RemoteAddr)}
	if c.peerCrt && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		src.Certificate = url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.TLS.PeerCertificates[0].Raw})))
	}
	var dst *authv3.AttributeContext_Peer
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		dst = &authv3.AttributeContext_Peer{Address: socketAddress(la.String())}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      src,
		Destination: dst,
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.Now(),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: r.Header.Get("X-Request-Id"), Method: r.Method, Headers: hdr,
				Path: r.URL.RequestURI(), Host: r.Host, Scheme: scheme, Size: size, Protocol: r.Proto,
			},
		},
	}}
}

func socketAddress(hostPort string) *corev3.Address {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return nil
	}
	n, _ := strconv.Atoi(port)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(n)},
	}}}
}

// headerOption applies one HeaderValueOption as Envoy's ext_authz does:
// `append` decides when set (true appends, false overwrites); otherwise
// append_action does, its zero value meaning overwrite here, because
// `append` defaults to false in ext_authz messages.
func headerOption(set, appendTo http.Header, existing http.Header, o *corev3.HeaderValueOption) {
	h := o.GetHeader()
	if h == nil || !httpguts.ValidHeaderFieldName(h.GetKey()) || strings.HasPrefix(h.GetKey(), ":") {
		return
	}
	val := h.GetValue()
	if val == "" && len(h.GetRawValue()) > 0 {
		val = string(h.GetRawValue())
	}
	if !httpguts.ValidHeaderFieldValue(val) {
		return // a value that would split the request is dropped
	}
	k := http.CanonicalHeaderKey(h.GetKey())
	if o.GetAppend() != nil {
		if o.GetAppend().GetValue() {
			appendTo[k] = append(appendTo[k], val)
		} else {
			set[k] = append(set[k], val)
		}
		return
	}
	switch o.GetAppendAction() {
	case corev3.HeaderValueOption_ADD_IF_ABSENT:
		if len(existing.Values(k)) == 0 && len(set[k]) == 0 {
			set[k] = append(set[k], val)
		}
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
		if len(existing.Values(k)) > 0 {
			set[k] = append(set[k], val)
		}
	default:
		set[k] = append(set[k], val)
	}
}

func (c *compiledExtAuthz) checkGRPC(r *http.Request, client authv3.AuthorizationClient) (*authzVerdict, error) {
	ctx, cancel := context.WithTimeout(r.Context(), c.timeout)
	defer cancel()
	res, err := client.Check(ctx, c.checkRequest(r))
	if err != nil {
		return nil, err
	}
	v := &authzVerdict{setUp: http.Header{}, appendUp: http.Header{}, clientHdr: http.Header{}, appendClient: http.Header{}}
	if codes.Code(res.GetStatus().GetCode()) == codes.OK {
		v.allow = true
		ok := res.GetOkResponse()
		for _, o := range ok.GetHeaders() {
			headerOption(v.setUp, v.appendUp, r.Header, o)
		}
		for _, k := range ok.GetHeadersToRemove() {
			v.removeUp = append(v.removeUp, strings.ToLower(k))
		}
		for _, o := range ok.GetResponseHeadersToAdd() {
			// Added to the upstream's response: `append` false overwrites.
			headerOption(v.clientHdr, v.appendClient, http.Header{}, o)
		}
		for _, q := range ok.GetQueryParametersToSet() {
			if v.setQuery == nil {
				v.setQuery = url.Values{}
			}
			v.setQuery.Set(q.GetKey(), q.GetValue())
		}
		v.removeQuery = ok.GetQueryParametersToRemove()
		return v, nil
	}
	den := res.GetDeniedResponse()
	v.status = int(den.GetStatus().GetCode())
	if v.status < 200 || v.status > 599 {
		v.status = 0
	}
	for _, o := range den.GetHeaders() {
		headerOption(v.clientHdr, v.clientHdr, http.Header{}, o)
	}
	v.body = den.GetBody()
	return v, nil
}

// maxAuthzBody bounds what is read of an HTTP authorization service's answer.
const maxAuthzBody = 64 << 10

// checkHTTP asks an HTTP authorization service as Envoy's http_service
// does: the client's method and path under the URI's path prefix, an empty
// body, Host and Authorization (which Envoy always sends), allowedHeaders
// and serviceRequestHeadersToAdd. 200 allows; any other status denies
// and is what the client gets.
func (c *compiledExtAuthz) checkHTTP(r *http.Request, hc *http.Client) (*authzVerdict, error) {
	ctx, cancel := context.WithTimeout(r.Context(), c.timeout)
	defer cancel()
	scheme := "http"
	if c.uri.tls {
		scheme = "https"
	}
	target := scheme + "://" + c.uri.hostPort() + c.uri.path + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, target, http.NoBody)
	if err != nil {
		return nil, err
	}
	req.Host = r.Host
	if a := r.Header.Values("Authorization"); len(a) > 0 {
		req.Header["Authorization"] = a
	}
	for k, vs := range r.Header {
		if c.allowed[strings.ToLower(k)] {
			req.Header[k] = vs
		}
	}
	for _, h := range c.addToCheck {
		req.Header.Set(h.Key, h.Value)
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxAuthzBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxAuthzBody {
		return nil, errors.New("authorization response body over 64 KiB")
	}
	v := &authzVerdict{setUp: http.Header{}, appendUp: http.Header{}, clientHdr: http.Header{}, appendClient: http.Header{}}
	pick := func(into http.Header, names []string) {
		for _, n := range names {
			if vs := res.Header.Values(n); len(vs) > 0 {
				into[http.CanonicalHeaderKey(n)] = vs
			}
		}
	}
	if res.StatusCode == http.StatusOK {
		v.allow = true
		pick(v.setUp, c.upstream)
		pick(v.appendUp, c.upstreamAppend)
		pick(v.clientHdr, c.clientOnSuccess)
		for _, k := range strings.Split(res.Header.Get("X-Envoy-Auth-Headers-To-Remove"), ",") {
			if k = strings.ToLower(strings.TrimSpace(k)); k != "" {
				v.removeUp = append(v.removeUp, k)
			}
		}
		return v, nil
	}
	v.status = res.StatusCode
	v.body = string(body)
	if c.client == nil {
		// Envoy: with no allowed_client_headers, every header of the
		// denial but Host reaches the client (hop-by-hop ones never do).
		for k, vs := range res.Header {
			switch k {
			case "Host", "Content-Length", "Connection", "Transfer-Encoding", "Keep-Alive", "Date":
				continue
			}
			v.clientHdr[k] = vs
		}
	} else {
		pick(v.clientHdr, append([]string{"content-type", "www-authenticate", "location"}, c.client...))
	}
	return v, nil
}

// ExtAuthzSpec is a validated native-ext-authz-flex binding, for
// the Envoy rendering (Envoy's own ext_authz filter).
type ExtAuthzSpec struct {
	// GRPC: an envoy.service.auth.v3 service; else an HTTP one.
	GRPC bool
	Host string
	Port uint32
	TLS  bool
	// URI is the configured URI; PathPrefix its path (HTTP only).
	URI, PathPrefix string
	Timeout         time.Duration
	IncludePeerCert bool
	// AllowedHeaders is nil when not configured (the server type's default).
	AllowedHeaders []string
	// RequestHeadersToAdd are key/value pairs (HTTP only).
	RequestHeadersToAdd                                                             [][2]string
	UpstreamHeaders, UpstreamHeadersToAppend, ClientHeaders, ClientHeadersOnSuccess []string
}

// ExtAuthzSpecOf validates p's configuration and returns its spec.
func ExtAuthzSpecOf(p *ir.Policy) (*ExtAuthzSpec, error) {
	c, err := parseNativeExtAuthz(p.Config)
	if err != nil {
		return nil, err
	}
	s := &ExtAuthzSpec{GRPC: c.grpc, Host: c.uri.host, Port: c.uri.port, TLS: c.uri.tls, URI: c.uri.raw, PathPrefix: c.uri.path,
		Timeout: c.timeout, IncludePeerCert: c.peerCrt, UpstreamHeaders: c.upstream, UpstreamHeadersToAppend: c.upstreamAppend,
		ClientHeaders: c.client, ClientHeadersOnSuccess: c.clientOnSuccess}
	if c.allowed != nil {
		s.AllowedHeaders = []string{}
		for h := range c.allowed {
			s.AllowedHeaders = append(s.AllowedHeaders, h)
		}
		sort.Strings(s.AllowedHeaders)
	}
	for _, h := range c.addToCheck {
		s.RequestHeadersToAdd = append(s.RequestHeadersToAdd, [2]string{h.Key, h.Value})
	}
	return s, nil
}
