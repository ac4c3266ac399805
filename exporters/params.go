package exporters

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Params are an output's parameters as Fluent Bit sees them: string
// values, keys matched case-insensitively (Fluent Bit lowercases them).
type Params map[string]string

// Normalize returns a copy with lowercased, trimmed keys.
func Normalize(in map[string]string) Params {
	p := make(Params, len(in))
	for k, v := range in {
		p[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	return p
}

// Get returns the value of key ("" when unset).
func (p Params) Get(key string) string { return p[key] }

// Bool parses Fluent Bit's booleans (on/off, true/false, yes/no, 1/0).
func (p Params) Bool(key string, def bool) (bool, error) {
	v, ok := p[key]
	if !ok || v == "" {
		return def, nil
	}
	switch strings.ToLower(v) {
	case "on", "true", "yes", "1":
		return true, nil
	case "off", "false", "no", "0":
		return false, nil
	}
	return def, fmt.Errorf("parameter %q: %q is not a boolean (use On or Off)", key, v)
}

// Int parses an integer parameter.
func (p Params) Int(key string, def int) (int, error) {
	v, ok := p[key]
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return def, fmt.Errorf("parameter %q: %q is not a non-negative integer", key, v)
	}
	return n, nil
}

// CommonKeys are the parameters every Fluent Bit output accepts, plus
// flexgw's queue and batch keys (documented in docs/logging.md). Any key
// under "tls." or "net." is accepted as well: they tune the transport.
var CommonKeys = []string{
	"match", "match_regex", "alias", "retry_limit", "workers", "log_level",
	"storage.total_limit_size", "tls",
	"queue.max_bytes", "queue.fsync", "batch.max_records", "batch.max_bytes", "batch.flush_interval",
}

// CheckKeys returns an error naming the first parameter that is neither in
// allowed nor a common key.
func (p Params) CheckKeys(allowed ...string) error {
	set := map[string]bool{}
	for _, k := range CommonKeys {
		set[k] = true
	}
	for _, k := range allowed {
		set[k] = true
	}
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if set[k] || strings.HasPrefix(k, "tls.") || strings.HasPrefix(k, "net.") {
			continue
		}
		all := append(append([]string{}, allowed...), CommonKeys...)
		sort.Strings(all)
		return fmt.Errorf("unknown parameter %q (known: %s)", k, strings.Join(all, ", "))
	}
	return nil
}

// BaseURL builds scheme://host:port from Fluent Bit's host, port and tls
// parameters. defPort applies when port is unset; tls defaults to off as
// in Fluent Bit.
func (p Params) BaseURL(defHost string, defPort int) (*url.URL, error) {
	host := p.Get("host")
	if host == "" {
		host = defHost
	}
	if host == "" {
		return nil, fmt.Errorf("parameter %q is required", "host")
	}
	port, err := p.Int("port", defPort)
	if err != nil {
		return nil, err
	}
	if port == 0 || port > 65535 {
		return nil, fmt.Errorf("parameter %q: %d is not a TCP port", "port", port)
	}
	useTLS, err := p.Bool("tls", false)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if useTLS {
		scheme = "https"
	}
	return &url.URL{Scheme: scheme, Host: host + ":" + strconv.Itoa(port)}, nil
}

// ParseURL checks that an explicit endpoint is an absolute http(s) URL.
func ParseURL(key, v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil {
		return nil, fmt.Errorf("parameter %q: %w", key, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("parameter %q: %q is not an absolute http(s) URL", key, v)
	}
	return u, nil
}

// Settings are what the process, not the config, gives an exporter.
type Settings struct {
	// Client sends requests; nil means a client with sane timeouts.
	Client *http.Client
	// Hostname is the gateway host, used where the protocol has a host field.
	Hostname string
	// Stdout is where the stdout output writes (nil: os.Stdout).
	Stdout io.Writer
}

// HTTPClient returns s.Client or a default client. tls.verify=off turns
// off certificate checks, as in Fluent Bit.
func (s Settings) HTTPClient(p Params) (*http.Client, error) {
	if s.Client != nil {
		return s.Client, nil
	}
	verify, err := p.Bool("tls.verify", true)
	if err != nil {
		return nil, err
	}
	return NewClient(!verify), nil
}

// NewClient returns an HTTP client for aggregator traffic.
func NewClient(insecure bool) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 4
	t.ResponseHeaderTimeout = 60 * time.Second
	if insecure {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for tls.verify Off
	}
	return &http.Client{Transport: t, Timeout: 2 * time.Minute}
}
