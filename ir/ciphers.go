package ir

import (
	"crypto/tls"
	"fmt"
	"strings"
)

// cipher is one TLS cipher suite Flex lists in its "Supported Ciphers"
// table, by its IANA name (which Flex's YAML uses).
type cipher struct {
	id uint16
	// boring is BoringSSL's name, which Envoy's cipher_suites expects.
	boring string
	// tls13 suites cannot be chosen: TLS 1.3 always offers all three.
	tls13 bool
}

// ciphers is the one table both data planes and validation read, so a
// cipher list is accepted, served by the built-in data plane and rendered
// for Envoy alike.
var ciphers = map[string]cipher{
	"TLS_AES_128_GCM_SHA256":       {tls.TLS_AES_128_GCM_SHA256, "", true},
	"TLS_AES_256_GCM_SHA384":       {tls.TLS_AES_256_GCM_SHA384, "", true},
	"TLS_CHACHA20_POLY1305_SHA256": {tls.TLS_CHACHA20_POLY1305_SHA256, "", true},

	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256":       {tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "ECDHE-ECDSA-AES128-GCM-SHA256", false},
	"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384":       {tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "ECDHE-ECDSA-AES256-GCM-SHA384", false},
	"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": {tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "ECDHE-ECDSA-CHACHA20-POLY1305", false},
	"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256":         {tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "ECDHE-RSA-AES128-GCM-SHA256", false},
	"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384":         {tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "ECDHE-RSA-AES256-GCM-SHA384", false},
	"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256":   {tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "ECDHE-RSA-CHACHA20-POLY1305", false},
	"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA":          {tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, "ECDHE-ECDSA-AES128-SHA", false},
	"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA":          {tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, "ECDHE-ECDSA-AES256-SHA", false},
	"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA":            {tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, "ECDHE-RSA-AES128-SHA", false},
	"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA":            {tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, "ECDHE-RSA-AES256-SHA", false},
	// RSA key exchange: weak (no forward secrecy) but in Flex's own
	// example; Go serves them when listed explicitly.
	"TLS_RSA_WITH_AES_128_GCM_SHA256": {tls.TLS_RSA_WITH_AES_128_GCM_SHA256, "AES128-GCM-SHA256", false},
	"TLS_RSA_WITH_AES_256_GCM_SHA384": {tls.TLS_RSA_WITH_AES_256_GCM_SHA384, "AES256-GCM-SHA384", false},
	"TLS_RSA_WITH_AES_128_CBC_SHA":    {tls.TLS_RSA_WITH_AES_128_CBC_SHA, "AES128-SHA", false},
	"TLS_RSA_WITH_AES_256_CBC_SHA":    {tls.TLS_RSA_WITH_AES_256_CBC_SHA, "AES256-SHA", false},
	"TLS_RSA_WITH_3DES_EDE_CBC_SHA":   {tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, "DES-CBC3-SHA", false},
}

// CheckCipher reports why name cannot be used, or nil.
func CheckCipher(name string) error {
	if _, ok := ciphers[name]; ok {
		return nil
	}
	if strings.Contains(name, "_PSK_") {
		return fmt.Errorf("%q is a pre-shared-key suite: Local Mode has no way to configure a pre-shared key, so flexgw does not offer it", name)
	}
	return fmt.Errorf("unknown cipher %q (use the IANA names of Flex's supported ciphers, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)", name)
}

// CipherSuiteIDs returns crypto/tls's ids for names, leaving out the TLS
// 1.3 suites (Go, like Flex, always offers all of them with TLS 1.3). An
// empty list means the defaults.
func CipherSuiteIDs(names []string) ([]uint16, error) {
	var out []uint16
	for _, n := range names {
		if err := CheckCipher(n); err != nil {
			return nil, err
		}
		if c := ciphers[n]; !c.tls13 {
			out = append(out, c.id)
		}
	}
	return out, nil
}

// EnvoyCipherNames returns the BoringSSL names Envoy's TlsParameters
// cipher_suites takes, without the TLS 1.3 suites (not configurable in
// Envoy either).
func EnvoyCipherNames(names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		if err := CheckCipher(n); err != nil {
			return nil, err
		}
		if c := ciphers[n]; !c.tls13 {
			out = append(out, c.boring)
		}
	}
	return out, nil
}

// TLSVersion maps Flex's "1.0".."1.3" (also "TLSv1.2") to crypto/tls;
// "" is 0, the library default.
func TLSVersion(v string) (uint16, error) {
	switch strings.TrimPrefix(strings.TrimPrefix(v, "TLSv"), "v") {
	case "":
		return 0, nil
	case "1.0":
		return tls.VersionTLS10, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%q: unknown TLS version (1.0, 1.1, 1.2 or 1.3)", v)
}
