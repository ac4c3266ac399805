// Package sumologic sends events to a Sumo Logic HTTP Logs source: a POST
// of newline-delimited JSON to the source URL, gzip, the X-Sumo-Category,
// X-Sumo-Name, X-Sumo-Host and X-Sumo-Fields metadata headers, at most
// 1 MB uncompressed per request; 429 and 503 are throttling and retried.
package sumologic

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/flexgw/flexgw/exporters"
	"github.com/flexgw/flexgw/internal/jsonstr"
)

// MaxBody is Sumo Logic's recommended ceiling on an uncompressed request.
const MaxBody = 1_000_000

// Keys are the parameters of a sumologic output, and of Fluent Bit's http
// output pointed at a Sumo Logic collector (host, port, uri, tls, format,
// header, json_date_key, ...).
var Keys = []string{
	"url", "endpoint", "host", "port", "uri", "format", "header", "compress",
	"http_user", "http_passwd", "json_date_key", "json_date_format",
	"source_category", "source_name", "source_host", "fields", "max_body_bytes",
	"log_response_payload", "allow_duplicated_headers",
}

// Sumo is the HTTP source exporter.
type Sumo struct {
	name    string
	maxBody int
	dateKey string
	post    exporters.Poster
}

var (
	_ exporters.RequestExporter = (*Sumo)(nil)
	_ exporters.Prober          = (*Sumo)(nil)
)

// SecretParams are the parameters that authenticate to Sumo Logic: an
// HTTP source's URL carries its token in the path, so url, endpoint and uri
// are secret; header may carry credentials too. Never shown by the admin
// API, never quoted in logs or errors.
var SecretParams = []string{"url", "endpoint", "uri", "header", "http_passwd", "tls.key_passwd"}

// New validates params and returns the exporter. It does no I/O.
func New(name string, params map[string]string, s exporters.Settings) (*Sumo, error) {
	p := exporters.Normalize(params)
	if err := p.CheckKeys(Keys...); err != nil {
		return nil, err
	}
	x := &Sumo{name: name, post: exporters.Poster{Header: http.Header{}}}
	var u *url.URL
	var err error
	switch {
	case p.Get("url") != "":
		u, err = exporters.ParseURL("url", p.Get("url"))
	case p.Get("endpoint") != "":
		u, err = exporters.ParseURL("endpoint", p.Get("endpoint"))
	default:
		u, err = p.BaseURL("", 443)
		if err == nil {
			if p.Get("uri") == "" {
				return nil, fmt.Errorf("parameter %q is required (the source's /receiver/v1/http/<token> path) unless %q is set", "uri", "url")
			}
			u.Path = p.Get("uri")
		}
	}
	if err != nil {
		return nil, err
	}
	x.post.URL = u.String()
	switch f := strings.ToLower(p.Get("format")); f {
	case "", "json_lines", "json_stream":
	default:
		return nil, fmt.Errorf("parameter %q: %q is not supported (use json_lines)", "format", f)
	}
	switch c := strings.ToLower(p.Get("compress")); c {
	case "", "gzip":
		x.post.Gzip = true
	case "none", "off":
	default:
		return nil, fmt.Errorf("parameter %q: %q is not supported (use gzip or none)", "compress", c)
	}
	if x.maxBody, err = p.Int("max_body_bytes", MaxBody); err != nil {
		return nil, err
	}
	x.dateKey = p.Get("json_date_key")
	if h := p.Get("header"); h != "" {
		// Fluent Bit's form is "Name value"; several are comma separated here.
		for _, kv := range strings.Split(h, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(kv), " ")
			if !ok || k == "" {
				return nil, fmt.Errorf("parameter %q: %q is not \"Name value\"", "header", kv)
			}
			x.post.Header.Set(k, strings.TrimSpace(v))
		}
	}
	for key, hdr := range map[string]string{"source_category": "X-Sumo-Category", "source_name": "X-Sumo-Name", "source_host": "X-Sumo-Host", "fields": "X-Sumo-Fields"} {
		if v := p.Get(key); v != "" {
			x.post.Header.Set(hdr, v)
		}
	}
	if x.post.Header.Get("X-Sumo-Host") == "" && s.Hostname != "" {
		x.post.Header.Set("X-Sumo-Host", s.Hostname)
	}
	if x.post.Header.Get("X-Sumo-Name") == "" {
		x.post.Header.Set("X-Sumo-Name", "flexgw")
	}
	if user := p.Get("http_user"); user != "" {
		req, _ := http.NewRequest(http.MethodPost, "http://x", nil)
		req.SetBasicAuth(user, p.Get("http_passwd"))
		x.post.Header.Set("Authorization", req.Header.Get("Authorization"))
	}
	x.post.Header.Set("Content-Type", "application/json") // whatever header says
	if x.post.Client, err = s.HTTPClient(p); err != nil {
		return nil, err
	}
	return x, nil
}

// Name implements exporters.Exporter.
func (x *Sumo) Name() string { return x.name }

// Encode renders events as JSON lines, calling emit once per body of at
// most the configured uncompressed size. The body slice is reused.
func (x *Sumo) Encode(events []exporters.Event, emit func(body []byte, n int) error) error {
	return exporters.SplitBodies(events, x.maxBody, 160, x.appendLine, emit)
}

func (x *Sumo) appendLine(b []byte, e *exporters.Event) []byte {
	j := e.JSON
	if x.dateKey == "" || len(j) < 2 || j[len(j)-1] != '}' {
		b = append(b, j...)
		return append(b, '\n')
	}
	b = append(b, j[:len(j)-1]...)
	if len(bytes.TrimSpace(j[1:len(j)-1])) > 0 {
		b = append(b, ',')
	}
	b = jsonstr.Append(b, x.dateKey)
	b = append(b, ':')
	b = strconv.AppendFloat(b, float64(e.Time.UnixMicro())/1e6, 'f', 6, 64)
	return append(b, '}', '\n')
}

// Export implements exporters.Exporter.
func (x *Sumo) Export(ctx context.Context, events []exporters.Event) error {
	return exporters.ExportAll(ctx, x, events)
}

// Probe implements exporters.Prober: the collector accepts connections.
func (x *Sumo) Probe(ctx context.Context) error { return exporters.DialProbe(ctx, x.post.URL) }

// ExportRequests implements exporters.RequestExporter: every body of at
// most max_body_bytes is confirmed (2xx) or failed on its own.
func (x *Sumo) ExportRequests(ctx context.Context, events []exporters.Event, report func(exporters.Outcome)) {
	x.post.SendAll(ctx, func(emit func([]byte, int, int) error) error {
		return exporters.SplitRanges(events, x.maxBody, 160, x.appendLine, emit)
	}, report)
}
