// Package httpout is Fluent Bit's generic http output: records POSTed to
// host:port/uri as a JSON array (format json) or newline-delimited JSON
// (json_lines, json_stream), with the record's time added under
// json_date_key in json_date_format, optional gzip, basic auth and extra
// headers (the list-valued header parameter of Flex's Dynatrace example).
// A 2xx answer confirms a request; 408, 429 and 5xx are retried, other
// answers dead-lettered (Fluent Bit retries those too, until its
// Retry_Limit drops them).
package httpout

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/flexgw/flexgw/exporters"
)

// Keys are the parameters of an http output: Fluent Bit's, plus flexgw's
// max_body_bytes (the uncompressed size at which a batch is split).
var Keys = []string{
	"host", "port", "uri", "format", "header", "header_tag", "http_user", "http_passwd",
	"compress", "json_date_key", "json_date_format", "allow_duplicated_headers",
	"log_response_payload", "max_body_bytes",
}

// SecretParams may carry credentials: the password, headers (API tokens,
// as in Dynatrace's "Authorization Api-Token ...") and the URI (some
// services put the token in the path).
var SecretParams = []string{"http_passwd", "header", "uri", "tls.key_passwd"}

// DefaultMaxBody is the uncompressed size of one request.
const DefaultMaxBody = 1 << 20

// HTTP is the generic HTTP exporter.
type HTTP struct {
	name    string
	array   bool // format json: one JSON array per request
	maxBody int
	date    exporters.DateField
	post    exporters.Poster
}

var (
	_ exporters.RequestExporter = (*HTTP)(nil)
	_ exporters.Prober          = (*HTTP)(nil)
)

// New validates params and returns the exporter. It does no I/O.
func New(name string, params map[string]string, s exporters.Settings) (*HTTP, error) {
	p := exporters.Normalize(params)
	if err := p.CheckKeys(Keys...); err != nil {
		return nil, err
	}
	x := &HTTP{name: name, post: exporters.Poster{Header: http.Header{}}}
	u, err := p.BaseURL("127.0.0.1", 80)
	if err != nil {
		return nil, err
	}
	uri := p.Get("uri")
	if uri == "" {
		uri = "/"
	}
	if !strings.HasPrefix(uri, "/") {
		return nil, fmt.Errorf("parameter %q: must start with '/'", "uri")
	}
	ru, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("parameter %q: not a URI path", "uri") // the value may hold a token: not quoted
	}
	u.Path, u.RawQuery = ru.Path, ru.RawQuery
	x.post.URL = u.String()
	ctype := "application/json"
	switch f := strings.ToLower(p.Get("format")); f {
	case "json":
		x.array = true
	case "json_lines", "json_stream":
		ctype = "application/x-ndjson"
	case "", "msgpack":
		return nil, fmt.Errorf("parameter %q: msgpack (Fluent Bit's default) is not supported; set format to json, json_lines or json_stream", "format")
	default:
		return nil, fmt.Errorf("parameter %q: %q is not supported (use json, json_lines or json_stream)", "format", f)
	}
	switch c := strings.ToLower(p.Get("compress")); c {
	case "gzip":
		x.post.Gzip = true
	case "", "none", "off":
	default:
		return nil, fmt.Errorf("parameter %q: %q is not supported (use gzip)", "compress", c)
	}
	if x.maxBody, err = p.Int("max_body_bytes", DefaultMaxBody); err != nil {
		return nil, err
	}
	if x.maxBody == 0 {
		return nil, fmt.Errorf("parameter %q: must be positive", "max_body_bytes")
	}
	if x.date, err = exporters.ParseDateField(p, "date"); err != nil {
		return nil, err
	}
	if p.Get("header_tag") != "" {
		// Records here carry no Fluent Bit tag to send.
		return nil, fmt.Errorf("parameter %q is not supported by the in-process pipeline", "header_tag")
	}
	if _, err := p.Bool("log_response_payload", true); err != nil {
		return nil, err
	}
	dup, err := p.Bool("allow_duplicated_headers", true)
	if err != nil {
		return nil, err
	}
	x.post.Header.Set("Content-Type", ctype)
	if user := p.Get("http_user"); user != "" {
		req, _ := http.NewRequest(http.MethodPost, "http://x", nil)
		req.SetBasicAuth(user, p.Get("http_passwd"))
		x.post.Header.Set("Authorization", req.Header.Get("Authorization"))
	}
	lines, err := exporters.HeaderLines("header", p.Get("header"))
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, h := range lines {
		k := http.CanonicalHeaderKey(h[0])
		// A configured header replaces the default of the same name;
		// with allow_duplicated_headers (Fluent Bit's default) repeats
		// of it are all sent.
		if !set[k] || !dup {
			x.post.Header.Set(k, h[1])
			set[k] = true
			continue
		}
		x.post.Header.Add(k, h[1])
	}
	if x.post.Client, err = s.HTTPClient(p); err != nil {
		return nil, err
	}
	return x, nil
}

// Name implements exporters.Exporter.
func (x *HTTP) Name() string { return x.name }

// Encode renders events as request bodies of at most max_body_bytes (an
// event bigger than that alone gets a body of its own). The body slice is
// reused after emit returns.
func (x *HTTP) Encode(events []exporters.Event, emit func(body []byte, n int) error) error {
	return x.ranges(events, func(body []byte, lo, hi int) error { return emit(body, hi-lo) })
}

func (x *HTTP) ranges(events []exporters.Event, emit func(body []byte, lo, hi int) error) error {
	if !x.array {
		return exporters.SplitRanges(events, x.maxBody, 32, x.appendLine, emit)
	}
	// format json: records separated by commas, wrapped in [ ] per body.
	return exporters.SplitRanges(events, x.maxBody-2, 32, x.appendElem, func(body []byte, lo, hi int) error {
		arr := exporters.GetBuffer()
		defer exporters.PutBuffer(arr)
		arr.WriteByte('[')
		arr.Write(body[:len(body)-1]) // the last element's comma
		arr.WriteByte(']')
		return emit(arr.Bytes(), lo, hi)
	})
}

func (x *HTTP) appendLine(b []byte, e *exporters.Event) []byte {
	return append(x.date.AppendRecord(b, e), '\n')
}

func (x *HTTP) appendElem(b []byte, e *exporters.Event) []byte {
	return append(x.date.AppendRecord(b, e), ',')
}

// Export implements exporters.Exporter.
func (x *HTTP) Export(ctx context.Context, events []exporters.Event) error {
	return exporters.ExportAll(ctx, x, events)
}

// Probe implements exporters.Prober: the server accepts connections.
func (x *HTTP) Probe(ctx context.Context) error { return exporters.DialProbe(ctx, x.post.URL) }

// ExportRequests implements exporters.RequestExporter: each body is
// confirmed (2xx) or failed on its own.
func (x *HTTP) ExportRequests(ctx context.Context, events []exporters.Event, report func(exporters.Outcome)) {
	x.post.SendAll(ctx, func(emit func([]byte, int, int) error) error { return x.ranges(events, emit) }, report)
}
