package tracing

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"google.golang.org/grpc/credentials"

	"github.com/flexgw/flexgw/ir"
)

// Protocols of the OTLP exporter.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http"
)

// DefaultTimeout bounds one export when provider.properties.timeout is unset.
const DefaultTimeout = 10 * time.Second

// endpoint is where and how spans are exported, decided from Flex's
// provider properties:
//
//	address      "h2://host:4317" or "grpc://host:4317"  → OTLP/gRPC, plaintext
//	             "grpcs://host:4317"                      → OTLP/gRPC, TLS
//	             "http://host:4318[/path]"                → OTLP/HTTP, plaintext
//	             "https://host:4318[/path]"               → OTLP/HTTP, TLS
//	             "host:port" (no scheme)                  → per serviceType, plaintext
//	serviceType  "grpc" or "http": overrides the scheme's protocol (Flex
//	             writes address h2://...:4317 with serviceType grpc)
//	timeout      Go duration of one export ("10s")
//
// OTLP/HTTP posts protobuf to the URL's path, /v1/traces when it has none.
type endpoint struct {
	protocol string
	hostPort string
	path     string
	tls      bool
	timeout  time.Duration
}

func parseEndpoint(t *ir.Tracing) (endpoint, error) {
	props := t.Provider.Properties
	field := func(name string) string {
		return fmt.Sprintf("%s: spec.tracing.provider.properties.%s", t.Source, name)
	}
	addr := strings.TrimSpace(props["address"])
	if addr == "" {
		return endpoint{}, fmt.Errorf("%s: required for provider type %q (e.g. h2://otel-collector:4317)", field("address"), t.Provider.Type)
	}
	ep := endpoint{timeout: DefaultTimeout}
	if !strings.Contains(addr, "://") {
		ep.hostPort = addr
		ep.protocol = ProtocolGRPC
	} else {
		u, err := url.Parse(addr)
		if err != nil {
			return endpoint{}, fmt.Errorf("%s: %w", field("address"), err)
		}
		if u.Host == "" {
			return endpoint{}, fmt.Errorf("%s: %q has no host:port", field("address"), addr)
		}
		ep.hostPort = u.Host
		ep.path = u.Path
		switch strings.ToLower(u.Scheme) {
		case "h2", "grpc", "h2c":
			ep.protocol = ProtocolGRPC
		case "grpcs":
			ep.protocol, ep.tls = ProtocolGRPC, true
		case "http":
			ep.protocol = ProtocolHTTP
		case "https":
			ep.protocol, ep.tls = ProtocolHTTP, true
		default:
			return endpoint{}, fmt.Errorf("%s: unsupported scheme %q (use h2, grpc, grpcs, http or https)", field("address"), u.Scheme)
		}
	}
	switch st := strings.ToLower(strings.TrimSpace(props["serviceType"])); st {
	case "":
	case ProtocolGRPC, ProtocolHTTP:
		ep.protocol = st
	default:
		return endpoint{}, fmt.Errorf("%s: %q is not grpc or http", field("serviceType"), props["serviceType"])
	}
	if ep.protocol == ProtocolHTTP && (ep.path == "" || ep.path == "/") {
		ep.path = "/v1/traces"
	}
	if v := strings.TrimSpace(props["timeout"]); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return endpoint{}, fmt.Errorf("%s: %q is not a positive duration like 10s", field("timeout"), v)
		}
		ep.timeout = d
	}
	return ep, nil
}

func (ep endpoint) String() string {
	scheme := map[[2]any]string{
		{ProtocolGRPC, false}: "grpc", {ProtocolGRPC, true}: "grpcs",
		{ProtocolHTTP, false}: "http", {ProtocolHTTP, true}: "https",
	}[[2]any{ep.protocol, ep.tls}]
	return scheme + "://" + ep.hostPort + ep.path
}

// newExporter creates the OTLP exporter. Neither client dials eagerly, so
// an unreachable collector does not fail a reload; export errors are
// logged by the OTel error handler.
func newExporter(ctx context.Context, ep endpoint) (*otlptrace.Exporter, error) {
	switch ep.protocol {
	case ProtocolHTTP:
		opts := []otlptracehttp.Option{
			otlptracehttp.WithEndpoint(ep.hostPort),
			otlptracehttp.WithURLPath(ep.path),
			otlptracehttp.WithTimeout(ep.timeout),
		}
		if ep.tls {
			opts = append(opts, otlptracehttp.WithTLSClientConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
		} else {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		return otlptracehttp.New(ctx, opts...)
	default:
		opts := []otlptracegrpc.Option{
			otlptracegrpc.WithEndpoint(ep.hostPort),
			otlptracegrpc.WithTimeout(ep.timeout),
		}
		if ep.tls {
			opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})))
		} else {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, opts...)
	}
}
