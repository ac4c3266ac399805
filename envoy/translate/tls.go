package translate

import (
	"fmt"
	"net"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flexgw/flexgw/ir"
)

// SystemCAFile is the trust store Envoy verifies upstreams against when a
// service names no CA of its own (Debian's and Envoy's image path).
const SystemCAFile = "/etc/ssl/certs/ca-certificates.crt"

// Secret names of an https listener, delivered over SDS (ADS) so rotating
// a certificate does not drain the listener.
func certSecretName(listener string) string     { return listener + "/cert" }
func clientCASecretName(listener string) string { return listener + "/client-ca" }

func downstreamTLS(l *ir.Listener) (*corev3.TransportSocket, []*tlsv3.Secret, error) {
	s := l.TLS
	if s.CertPEM == "" || s.KeyPEM == "" {
		return nil, nil, fmt.Errorf("certificate and key are required")
	}
	params, err := tlsParams(s.MinVersion, s.MaxVersion, s.Ciphers)
	if err != nil {
		return nil, nil, err
	}
	secrets := []*tlsv3.Secret{{
		Name: certSecretName(l.Name),
		Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(s.CertPEM),
			PrivateKey:       inline(s.KeyPEM),
		}},
	}}
	sds := []*tlsv3.SdsSecretConfig{{Name: certSecretName(l.Name), SdsConfig: adsSource()}}
	// Envoy picks among several certificates by the client's SNI against
	// each certificate's names, falling back to the first, as the built-in
	// data plane does.
	for i, ck := range s.SNICerts {
		name := fmt.Sprintf("%s-%d", certSecretName(l.Name), i+1)
		secrets = append(secrets, &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(ck.CertPEM), PrivateKey: inline(ck.KeyPEM),
		}}})
		sds = append(sds, &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsSource()})
	}
	alpn := s.ALPN
	if len(alpn) == 0 {
		alpn = []string{"h2", "http/1.1"}
	}
	common := &tlsv3.CommonTlsContext{
		TlsParams:                      params,
		AlpnProtocols:                  alpn,
		TlsCertificateSdsSecretConfigs: sds,
	}
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: common}
	if s.ClientCAPEM != "" {
		secrets = append(secrets, &tlsv3.Secret{
			Name: clientCASecretName(l.Name),
			Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: inline(s.ClientCAPEM),
			}},
		})
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
			ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: clientCASecretName(l.Name), SdsConfig: adsSource()},
		}
		ctx.RequireClientCertificate = wrapperspb.Bool(s.RequireClientCert)
	}
	ts, err := transportSocket(ctx)
	return ts, secrets, err
}

// policyCallTLS is the transport socket of a policy's outbound cluster
// under Configuration spec.defaultTLS.outboundPolicyCalls: the cluster's
// own SNI (its host) is kept, validation follows the default context.
func policyCallTLS(pt *ir.UpstreamTLS, c *clusterv3.Cluster) (*corev3.TransportSocket, error) {
	var host string
	var eps []ir.Endpoint
	for _, le := range c.GetLoadAssignment().GetEndpoints() {
		for _, lb := range le.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			if host == "" {
				host = sa.GetAddress()
			}
			eps = append(eps, ir.Endpoint{Host: sa.GetAddress(), Port: int(sa.GetPortValue())})
		}
	}
	t := *pt
	if t.SNI == "" && net.ParseIP(host) == nil {
		t.SNI = host
	}
	return upstreamTLS(&ir.Service{TLS: &t, Endpoints: eps})
}

func upstreamTLS(svc *ir.Service) (*corev3.TransportSocket, error) {
	t := svc.TLS
	if t == nil {
		t = &ir.UpstreamTLS{}
	}
	sni := t.SNI
	// An IP address is no server name (RFC 6066): no SNI then, and the
	// certificate is checked for the IP.
	sanType, san := tlsv3.SubjectAltNameMatcher_DNS, sni
	if sni == "" && len(svc.Endpoints) > 0 {
		host := svc.Endpoints[0].Host
		if net.ParseIP(host) != nil {
			sanType, san = tlsv3.SubjectAltNameMatcher_IP_ADDRESS, host
		} else {
			sni, san = host, host
		}
	}
	params, err := tlsParams(t.MinVersion, t.MaxVersion, t.Ciphers)
	if err != nil {
		return nil, err
	}
	common := &tlsv3.CommonTlsContext{TlsParams: params, AlpnProtocols: t.ALPN}
	if svc.HTTP2 && len(t.ALPN) == 0 {
		common.AlpnProtocols = []string{"h2"}
	}
	if !t.SkipValidation {
		ca := &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: SystemCAFile}}
		if t.CAPEM != "" {
			ca = inline(t.CAPEM)
		}
		vc := &tlsv3.CertificateValidationContext{TrustedCa: ca}
		if san != "" {
			vc.MatchTypedSubjectAltNames = []*tlsv3.SubjectAltNameMatcher{{
				SanType: sanType,
				Matcher: exact(san),
			}}
		}
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
	}
	if t.CertPEM != "" && t.KeyPEM != "" {
		common.TlsCertificates = []*tlsv3.TlsCertificate{{CertificateChain: inline(t.CertPEM), PrivateKey: inline(t.KeyPEM)}}
	}
	return transportSocket(&tlsv3.UpstreamTlsContext{Sni: sni, CommonTlsContext: common})
}

func transportSocket(ctx proto.Message) (*corev3.TransportSocket, error) {
	a, err := toAny(ctx)
	if err != nil {
		return nil, err
	}
	return &corev3.TransportSocket{
		Name:       wellknown.TransportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a},
	}, nil
}

func inline(pem string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: pem}}
}

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

// tlsParams maps Flex's version strings ("1.2", "TLSv1.3") to Envoy's.
func tlsParams(minV, maxV string, ciphers []string) (*tlsv3.TlsParameters, error) {
	if minV == "" && maxV == "" && len(ciphers) == 0 {
		return nil, nil
	}
	names, err := ir.EnvoyCipherNames(ciphers)
	if err != nil {
		return nil, fmt.Errorf("ciphers: %w", err)
	}
	p := &tlsv3.TlsParameters{CipherSuites: names}
	if p.TlsMinimumProtocolVersion, err = tlsVersion(minV); err != nil {
		return nil, fmt.Errorf("minVersion: %w", err)
	}
	if p.TlsMaximumProtocolVersion, err = tlsVersion(maxV); err != nil {
		return nil, fmt.Errorf("maxVersion: %w", err)
	}
	return p, nil
}

func tlsVersion(v string) (tlsv3.TlsParameters_TlsProtocol, error) {
	switch strings.TrimPrefix(strings.TrimPrefix(v, "TLSv"), "v") {
	case "":
		return tlsv3.TlsParameters_TLS_AUTO, nil
	case "1.0":
		return tlsv3.TlsParameters_TLSv1_0, nil
	case "1.1":
		return tlsv3.TlsParameters_TLSv1_1, nil
	case "1.2":
		return tlsv3.TlsParameters_TLSv1_2, nil
	case "1.3":
		return tlsv3.TlsParameters_TLSv1_3, nil
	}
	return 0, fmt.Errorf("%q: unknown TLS version (1.0, 1.1, 1.2 or 1.3)", v)
}
