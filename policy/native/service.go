package native

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flexgw/flexgw/policy"
)

// This file holds what the two native Envoy service policies
// (native-ext-authz-flex, native-ext-proc-flex) share: Flex's `h2://`
// service URI, Flex's loosely typed booleans, and gRPC connections to the
// services that outlive one configuration snapshot.

// serviceURI is a parsed Flex external service URI.
type serviceURI struct {
	host string
	port uint32
	tls  bool
	// path is the URI's path: an HTTP authorization service's path prefix.
	path string
	raw  string
}

func (u serviceURI) hostPort() string { return net.JoinHostPort(u.host, strconv.Itoa(int(u.port))) }

// parseServiceURI reads Flex's service URI. Flex documents `h2://host:port`
// (HTTP/2 cleartext) for gRPC services; `h2s://` and `https://` ask for
// TLS; http/https are the HTTP authorization service's schemes.
func parseServiceURI(field, s string, grpcService bool) (serviceURI, error) {
	if s == "" {
		return serviceURI{}, policy.FieldErr(field, "required")
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil {
		return serviceURI{}, policy.FieldErr(field, "must be a URI like h2://host:port, got %q", s)
	}
	out := serviceURI{host: u.Hostname(), path: u.EscapedPath(), raw: s}
	var defPort uint32
	switch scheme := strings.ToLower(u.Scheme); {
	case grpcService && (scheme == "h2" || scheme == "grpc" || scheme == "http"):
		defPort = 80
	case grpcService && (scheme == "h2s" || scheme == "grpcs" || scheme == "https"):
		out.tls, defPort = true, 443
	case !grpcService && scheme == "http":
		defPort = 80
	case !grpcService && scheme == "https":
		out.tls, defPort = true, 443
	default:
		want := "http or https"
		if grpcService {
			want = "h2 (cleartext HTTP/2) or h2s (TLS)"
		}
		return serviceURI{}, policy.FieldErr(field, "scheme %q not supported: want %s, as in h2://authz.example.com:9001", u.Scheme, want)
	}
	out.port = defPort
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return serviceURI{}, policy.FieldErr(field, "port %q out of range", p)
		}
		out.port = uint32(n)
	}
	if grpcService && out.path != "" && out.path != "/" {
		return serviceURI{}, policy.FieldErr(field, "a gRPC service URI has no path, got %q", out.path)
	}
	if out.path == "/" {
		out.path = ""
	}
	return out, nil
}

var (
	grpcConnsMu sync.Mutex
	// grpcConns are shared by every snapshot's bindings: a reload builds
	// new middleware, and a connection per build would leak one per
	// reload. Bounded by the number of distinct service URIs configured.
	grpcConns = map[string]*grpc.ClientConn{}
)

// serviceConn returns the shared client connection to u. TLS uses the
// policy-call TLS context (Configuration spec.defaultTLS.outboundPolicyCalls).
func serviceConn(env policy.Env, u serviceURI) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	key := "h2://" + u.hostPort()
	if u.tls {
		cfg := &tls.Config{}
		if env.Snapshot != nil && env.Snapshot.PolicyCallTLS != nil {
			c, err := policy.PolicyCallTLSConfig(env.Snapshot.PolicyCallTLS)
			if err != nil {
				return nil, fmt.Errorf("defaultTLS.outboundPolicyCalls: %w", err)
			}
			cfg = c
			// The TLS context is part of the key: a changed context gets
			// a connection of its own, an unchanged one (a reload) reuses it.
			key += fmt.Sprintf("|tls|%x", sha256.Sum256([]byte(fmt.Sprintf("%+v", *env.Snapshot.PolicyCallTLS))))
		} else {
			key += "|tls"
		}
		cfg.NextProtos = []string{"h2"}
		creds = credentials.NewTLS(cfg)
	}
	grpcConnsMu.Lock()
	defer grpcConnsMu.Unlock()
	if c, ok := grpcConns[key]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(u.hostPort(), grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u.raw, err)
	}
	grpcConns[key] = c
	return c, nil
}
