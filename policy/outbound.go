package policy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/flexgw/flexgw/ir"
)

// PolicyCallClient is the HTTP client for a request a policy makes itself
// (a JWKS fetch, token introspection, an authorization service): its TLS
// context is Configuration spec.defaultTLS.outboundPolicyCalls when set,
// else the system roots, as Flex's default policy-call TLS context. Every
// policy that calls out builds its client here, so one setting covers all.
func PolicyCallClient(env Env, timeout time.Duration) (*http.Client, error) {
	var pt *ir.UpstreamTLS
	if env.Snapshot != nil {
		pt = env.Snapshot.PolicyCallTLS
	}
	if pt == nil {
		return &http.Client{Timeout: timeout}, nil
	}
	c, err := PolicyCallTLSConfig(pt)
	if err != nil {
		return nil, fmt.Errorf("defaultTLS.outboundPolicyCalls: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = c
	return &http.Client{Timeout: timeout, Transport: tr}, nil
}

// PolicyCallTLSConfig converts the policy-call TLS context to crypto/tls.
func PolicyCallTLSConfig(pt *ir.UpstreamTLS) (*tls.Config, error) {
	c := &tls.Config{ServerName: pt.SNI, InsecureSkipVerify: pt.SkipValidation, NextProtos: pt.ALPN}
	if pt.CAPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(pt.CAPEM)) {
			return nil, errors.New("trustedCA: no PEM certificate found")
		}
		c.RootCAs = pool
	}
	if pt.CertPEM != "" || pt.KeyPEM != "" {
		cert, err := tls.X509KeyPair([]byte(pt.CertPEM), []byte(pt.KeyPEM))
		if err != nil {
			return nil, fmt.Errorf("certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	var err error
	if c.MinVersion, err = ir.TLSVersion(pt.MinVersion); err != nil {
		return nil, fmt.Errorf("minversion: %w", err)
	}
	if c.MaxVersion, err = ir.TLSVersion(pt.MaxVersion); err != nil {
		return nil, fmt.Errorf("maxversion: %w", err)
	}
	if c.CipherSuites, err = ir.CipherSuiteIDs(pt.Ciphers); err != nil {
		return nil, fmt.Errorf("ciphers: %w", err)
	}
	return c, nil
}
