// Package newrelic sends events to the New Relic Log API: gzip JSON in the
// detailed format [{"common":{"attributes":{}},"logs":[...]}], the US, EU
// or FedRAMP endpoint, an Api-Key or X-License-Key header, 202 Accepted as
// success, and every request under 1,000,000 compressed bytes.
package newrelic

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/flexgw/flexgw/exporters"
	"github.com/flexgw/flexgw/internal/jsonstr"
)

// Endpoints of the Log API by region.
const (
	EndpointUS      = "https://log-api.newrelic.com/log/v1"
	EndpointEU      = "https://log-api.eu.newrelic.com/log/v1"
	EndpointFedRAMP = "https://gov-log-api.newrelic.com/log/v1"
)

// MaxPayload is the Log API's limit on a compressed request body.
const MaxPayload = 1_000_000

// Keys are the parameters of a newrelic / nrlogs output: Fluent Bit's
// nrlogs names (base_uri, api_key, license_key, compress) plus region and
// endpoint.
var Keys = []string{"base_uri", "endpoint", "region", "api_key", "license_key", "compress", "max_body_bytes"}

// NewRelic is the Log API exporter.
type NewRelic struct {
	name      string
	url       string
	keyHeader string
	key       string
	gzip      bool
	maxBody   int
	chunk     int
	client    *http.Client
	common    []byte
	// send posts payloads post has compressed already.
	send exporters.Poster
}

var (
	_ exporters.RequestExporter = (*NewRelic)(nil)
	_ exporters.Prober          = (*NewRelic)(nil)
)

// SecretParams are the parameters that authenticate to New Relic: never
// shown by the admin API, never quoted in logs or errors.
var SecretParams = []string{"api_key", "license_key", "tls.key_passwd"}

// New validates params and returns the exporter. It does no I/O.
func New(name string, params map[string]string, s exporters.Settings) (*NewRelic, error) {
	p := exporters.Normalize(params)
	if err := p.CheckKeys(Keys...); err != nil {
		return nil, err
	}
	x := &NewRelic{name: name}
	endpoint := p.Get("endpoint")
	if endpoint == "" {
		endpoint = p.Get("base_uri")
	}
	if endpoint == "" {
		switch r := strings.ToLower(p.Get("region")); r {
		case "", "us":
			endpoint = EndpointUS
		case "eu":
			endpoint = EndpointEU
		case "fedramp", "gov":
			endpoint = EndpointFedRAMP
		default:
			return nil, fmt.Errorf("parameter %q: %q is not a region (use US, EU or FedRAMP)", "region", r)
		}
	}
	u, err := exporters.ParseURL("endpoint", endpoint)
	if err != nil {
		return nil, err
	}
	x.url = u.String()
	switch api, lic := p.Get("api_key"), p.Get("license_key"); {
	case api != "" && lic != "":
		return nil, fmt.Errorf("parameters %q and %q: set only one", "api_key", "license_key")
	case api != "":
		x.keyHeader, x.key = "Api-Key", api
	case lic != "":
		x.keyHeader, x.key = "X-License-Key", lic
	default:
		return nil, fmt.Errorf("parameter %q or %q is required", "api_key", "license_key")
	}
	switch c := strings.ToLower(p.Get("compress")); c {
	case "", "gzip":
		x.gzip = true
	case "none", "off":
	default:
		return nil, fmt.Errorf("parameter %q: %q is not supported (use gzip or none)", "compress", c)
	}
	if x.maxBody, err = p.Int("max_body_bytes", MaxPayload); err != nil {
		return nil, err
	}
	if x.maxBody == 0 {
		return nil, fmt.Errorf("parameter %q must be positive", "max_body_bytes")
	}
	// JSON logs compress about 10:1; start with uncompressed chunks that
	// will almost always fit and halve the rare one that does not.
	x.chunk = 4 * x.maxBody
	if !x.gzip {
		x.chunk = x.maxBody
	}
	if x.client, err = s.HTTPClient(p); err != nil {
		return nil, err
	}
	hdr := http.Header{"Content-Type": {"application/json"}, x.keyHeader: {x.key}}
	if x.gzip {
		hdr.Set("Content-Encoding", "gzip")
	}
	x.send = exporters.Poster{Client: x.client, URL: x.url, Header: hdr}
	c := []byte(`[{"common":{"attributes":{"plugin.type":"flexgw"`)
	if s.Hostname != "" {
		c = append(c, `,"hostname":`...)
		c = jsonstr.Append(c, s.Hostname)
	}
	x.common = append(c, `}},"logs":[`...)
	return x, nil
}

// Name implements exporters.Exporter.
func (x *NewRelic) Name() string { return x.name }

// Encode renders events as Log API payloads, calling emit once per body of
// at most the uncompressed chunk size. The body slice is reused.
func (x *NewRelic) Encode(events []exporters.Event, emit func(body []byte, n int) error) error {
	return x.encode(events, x.chunk, func(body []byte, lo, hi int) error { return emit(body, hi-lo) })
}

func (x *NewRelic) encode(events []exporters.Event, chunk int, emit func(body []byte, lo, hi int) error) error {
	buf := append(make([]byte, 0, min(exporters.EstimateSize(events, 120), chunk+64<<10)), x.common...)
	lo := 0
	for i := range events {
		start := len(buf)
		if i > lo {
			buf = append(buf, ',')
		}
		buf = appendLog(buf, &events[i])
		if i > lo && len(buf)+2 > chunk {
			body := append(buf[:start], ']', '}', ']')
			if err := emit(body, lo, i); err != nil {
				return err
			}
			buf = appendLog(append(buf[:0], x.common...), &events[i])
			lo = i
		}
	}
	if lo < len(events) {
		return emit(append(buf, ']', '}', ']'), lo, len(events))
	}
	return nil
}

func appendLog(b []byte, e *exporters.Event) []byte {
	b = append(b, `{"timestamp":`...)
	b = strconv.AppendInt(b, e.Time.UnixMilli(), 10)
	b = append(b, `,"message":`...)
	b = jsonstr.AppendBytes(b, e.Message)
	b = append(b, `,"attributes":`...)
	// Splice logtype into the record object so its fields become
	// attributes without decoding it.
	j := e.JSON
	if len(j) >= 2 && j[len(j)-1] == '}' {
		b = append(b, j[:len(j)-1]...)
		if len(bytes.TrimSpace(j[1:len(j)-1])) > 0 {
			b = append(b, ',')
		}
	} else {
		b = append(b, '{')
	}
	b = append(b, `"logtype":"flexgw.`...)
	b = append(b, e.Kind.String()...)
	return append(b, `"}}`...)
}

// Export implements exporters.Exporter.
func (x *NewRelic) Export(ctx context.Context, events []exporters.Event) error {
	return exporters.ExportAll(ctx, x, events)
}

// Probe implements exporters.Prober: the Log API accepts connections.
func (x *NewRelic) Probe(ctx context.Context) error { return exporters.DialProbe(ctx, x.url) }

// errStop ends an encode early; it never leaves this package.
var errStop = errors.New("stop")

// ExportRequests implements exporters.RequestExporter: every payload is
// confirmed (202) or failed on its own.
func (x *NewRelic) ExportRequests(ctx context.Context, events []exporters.Event, report func(exporters.Outcome)) {
	_ = x.encode(events, x.chunk, func(body []byte, lo, hi int) error {
		return x.post(ctx, events, lo, hi, body, report)
	})
}

// post sends the payload of events[lo:hi], halving it while its
// compressed form is over the Log API's limit, and reports each request.
// It returns errStop when the Log API could not be reached.
func (x *NewRelic) post(ctx context.Context, events []exporters.Event, lo, hi int, body []byte, report func(exporters.Outcome)) error {
	if x.gzip {
		zbuf := exporters.GetBuffer()
		defer exporters.PutBuffer(zbuf)
		exporters.Gzip(zbuf, body)
		body = zbuf.Bytes()
	}
	if len(body) > x.maxBody {
		if hi-lo == 1 {
			report(exporters.Outcome{Lo: lo, Hi: hi, Err: &exporters.Error{Status: http.StatusRequestEntityTooLarge, Retryable: false,
				Err: fmt.Errorf("one log event is %d bytes after compression, over the Log API limit of %d", len(body), x.maxBody)}})
			return nil
		}
		mid := lo + (hi-lo)/2
		for _, r := range [][2]int{{lo, mid}, {mid, hi}} {
			// One body per part: the size check happens in post.
			err := x.encode(events[r[0]:r[1]], 1<<62, func(b []byte, _, _ int) error { return x.post(ctx, events, r[0], r[1], b, report) })
			if err != nil {
				return err
			}
		}
		return nil
	}
	_, err := x.send.Post(ctx, nil, body)
	report(exporters.Outcome{Lo: lo, Hi: hi, Err: err})
	if !exporters.Continue(err) {
		return errStop
	}
	return nil
}
