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

// Endpoint is where and how spans are exported, decided from Flex's
// provider properties (the Envoy translator uses the same rules through
// ParseEndpoint, so both data planes export alike):
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
type Endpoint struct {
	// Protocol is ProtocolGRPC or ProtocolHTTP.
	Protocol string
	// HostPort is the collector's host:port.
	HostPort string
	// Path is the OTLP/HTTP URL path ("" for gRPC).
	Path string
	// TLS is set for grpcs:// and https:// addresses.
	TLS bool
	// Timeout bounds one export.
	Timeout time.Duration
}

// ParseEndpoint decides the exporter endpoint of a tracing configuration.
// Errors name the file, line and property.
func ParseEndpoint(t *ir.Tracing) (Endpoint, error) {
	props := t.Provider.Properties
	field := func(name string) string {
		return fmt.Sprintf("%s: spec.tracing.provider.properties.%s", t.Source, name)
	}
	addr := strings.TrimSpace(props["address"])
	if addr == "" {
		return Endpoint{}, fmt.Errorf("%s: required for provider type %q (e.g. h2://otel-collector:4317)", field("address"), t.Provider.Type)
	}
	ep := Endpoint{Timeout: DefaultTimeout}
	if !strings.Contains(addr, "://") {
		ep.HostPort = addr
		ep.Protocol = ProtocolGRPC
	} else {
		u, err := url.Parse(addr)
		if err != nil {
			return Endpoint{}, fmt.Errorf("%s: %w", field("address"), err)
		}
		if u.Host == "" {
			return Endpoint{}, fmt.Errorf("%s: %q has no host:port", field("address"), addr)
		}
		ep.HostPort = u.Host
		ep.Path = u.Path
		switch strings.ToLower(u.Scheme) {
		case "h2", "grpc", "h2c":
			ep.Protocol = ProtocolGRPC
		case "grpcs":
			ep.Protocol, ep.TLS = ProtocolGRPC, true
		case "http":
			ep.Protocol = ProtocolHTTP
		case "https":
			ep.Protocol, ep.TLS = ProtocolHTTP, true
		default:
			return Endpoint{}, fmt.Errorf("%s: unsupported scheme %q (use h2, grpc, grpcs, http or https)", field("address"), u.Scheme)
		}
	}
	switch st := strings.ToLower(strings.TrimSpace(props["serviceType"])); st {
	case "":
	case ProtocolGRPC, ProtocolHTTP:
		ep.Protocol = st
	default:
		return Endpoint{}, fmt.Errorf("%s: %q is not grpc or http", field("serviceType"), props["serviceType"])
	}
	if ep.Protocol == ProtocolHTTP && (ep.Path == "" || ep.Path == "/") {
		ep.Path = "/v1/traces"
	}
	if v := strings.TrimSpace(props["timeout"]); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return Endpoint{}, fmt.Errorf("%s: %q is not a positive duration like 10s", field("timeout"), v)
		}
		ep.Timeout = d
	}
	return ep, nil
}

// String is the endpoint as a URL: grpc://, grpcs://, http:// or https://.
func (ep Endpoint) String() string {
	scheme := map[[2]any]string{
		{ProtocolGRPC, false}: "grpc", {ProtocolGRPC, true}: "grpcs",
		{ProtocolHTTP, false}: "http", {ProtocolHTTP, true}: "https",
	}[[2]any{ep.Protocol, ep.TLS}]
	return scheme + "://" + ep.HostPort + ep.Path
}

// newExporter creates the OTLP exporter. Neither client dials eagerly, so
// an unreachable collector does not fail a reload; export errors are
// logged by the OTel error handler.
func newExporter(ctx context.Context, ep Endpoint) (*otlptrace.Exporter, error) {
	switch ep.Protocol {
	case ProtocolHTTP:
		opts := []otlptracehttp.Option{
			otlptracehttp.WithEndpoint(ep.HostPort),
			otlptracehttp.WithURLPath(ep.Path),
			otlptracehttp.WithTimeout(ep.Timeout),
		}
		if ep.TLS {
			opts = append(opts, otlptracehttp.WithTLSClientConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
		} else {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		return otlptracehttp.New(ctx, opts...)
	default:
		opts := []otlptracegrpc.Option{
			otlptracegrpc.WithEndpoint(ep.HostPort),
			otlptracegrpc.WithTimeout(ep.Timeout),
		}
		if ep.TLS {
			opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})))
		} else {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, opts...)
	}
}
