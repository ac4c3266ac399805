// Package splunk sends events to a Splunk HTTP Event Collector (HEC): the
// /services/collector/event endpoint, "Authorization: Splunk <token>",
// concatenated JSON event envelopes, gzip, and optional indexer
// acknowledgement (a batch is confirmed only once /services/collector/ack
// reports its ackId true).
package splunk

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flexgw/flexgw/exporters"
	"github.com/flexgw/flexgw/internal/jsonstr"
)

// Keys are the parameters of a splunk output: Fluent Bit's splunk output
// names, plus "endpoint" (a full URL, used by the Fluent Bit plugin where
// host/port are reserved) and flexgw's indexer-acknowledgement keys.
var Keys = []string{
	"host", "port", "uri", "endpoint", "splunk_token", "http_user", "http_passwd",
	"compress", "channel", "splunk_send_raw", "event_host", "event_source",
	"event_sourcetype", "event_index", "event_field", "http_buffer_size",
	"indexer_ack", "ack_poll_interval", "ack_timeout", "max_body_bytes",
}

// DefaultMaxBody keeps each request under Splunk Cloud's 1 MB default
// max_content_length with room for the envelope.
const DefaultMaxBody = 1 << 20

// Splunk is the HEC exporter.
type Splunk struct {
	name       string
	eventURL   string
	ackURL     string
	auth       string
	channel    string
	gzip       bool
	ack        bool
	ackPoll    time.Duration
	ackTimeout time.Duration
	maxBody    int
	client     *http.Client
	events     exporters.Poster // event requests
	// prefix is the constant start of every envelope after "time".
	prefix []byte
	fields []byte
}

var (
	_ exporters.RequestExporter = (*Splunk)(nil)
	_ exporters.Prober          = (*Splunk)(nil)
)

// SecretParams are the parameters that authenticate to Splunk: never shown
// by the admin API, never quoted in logs or errors.
var SecretParams = []string{"splunk_token", "http_passwd", "tls.key_passwd"}

// New validates params and returns the exporter. It does no I/O.
func New(name string, params map[string]string, s exporters.Settings) (*Splunk, error) {
	p := exporters.Normalize(params)
	if err := p.CheckKeys(Keys...); err != nil {
		return nil, err
	}
	x := &Splunk{name: name, ackPoll: 200 * time.Millisecond, ackTimeout: 2 * time.Minute}
	var base *url.URL
	var err error
	if e := p.Get("endpoint"); e != "" {
		base, err = exporters.ParseURL("endpoint", e)
	} else {
		base, err = p.BaseURL("", 8088)
	}
	if err != nil {
		return nil, err
	}
	path := p.Get("uri")
	if path == "" {
		path = base.Path
	}
	if path == "" || path == "/" {
		path = "/services/collector/event"
	}
	ev := *base
	ev.Path = path
	x.eventURL = ev.String()
	ack := *base
	ack.Path = strings.TrimSuffix(strings.TrimSuffix(path, "/event"), "/") + "/ack"
	if !strings.HasSuffix(path, "/event") {
		ack.Path = "/services/collector/ack"
	}
	x.ackURL = ack.String()

	switch tok, user := p.Get("splunk_token"), p.Get("http_user"); {
	case tok != "":
		x.auth = "Splunk " + tok
	case user != "":
		req, _ := http.NewRequest(http.MethodPost, "http://x", nil)
		req.SetBasicAuth(user, p.Get("http_passwd"))
		x.auth = req.Header.Get("Authorization")
	default:
		return nil, fmt.Errorf("parameter %q is required (the HEC token)", "splunk_token")
	}
	switch c := strings.ToLower(p.Get("compress")); c {
	case "", "gzip":
		x.gzip = true
	case "none", "off":
	default:
		return nil, fmt.Errorf("parameter %q: %q is not supported (use gzip or none)", "compress", c)
	}
	if _, err := p.Bool("splunk_send_raw", false); err != nil {
		return nil, err
	}
	if x.ack, err = p.Bool("indexer_ack", false); err != nil {
		return nil, err
	}
	x.channel = p.Get("channel")
	if x.ack && x.channel == "" {
		x.channel = newUUID()
	}
	for key, dst := range map[string]*time.Duration{"ack_poll_interval": &x.ackPoll, "ack_timeout": &x.ackTimeout} {
		if v := p.Get(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("parameter %q: %q is not a positive duration (e.g. 500ms)", key, v)
			}
			*dst = d
		}
	}
	if x.maxBody, err = p.Int("max_body_bytes", DefaultMaxBody); err != nil {
		return nil, err
	}
	if x.client, err = s.HTTPClient(p); err != nil {
		return nil, err
	}
	hdr := http.Header{"Authorization": {x.auth}, "Content-Type": {"application/json"}}
	if x.channel != "" {
		hdr.Set("X-Splunk-Request-Channel", x.channel)
	}
	x.events = exporters.Poster{Client: x.client, URL: x.eventURL, Header: hdr, Gzip: x.gzip}

	host := p.Get("event_host")
	if host == "" {
		host = s.Hostname
	}
	var pre []byte
	if host != "" {
		pre = appendKV(pre, "host", host)
	}
	source := p.Get("event_source")
	if source == "" {
		source = "flexgw"
	}
	pre = appendKV(pre, "source", source)
	if v := p.Get("event_sourcetype"); v != "" {
		pre = appendKV(pre, "sourcetype", v)
	}
	if v := p.Get("event_index"); v != "" {
		pre = appendKV(pre, "index", v)
	}
	x.prefix = pre
	if v := p.Get("event_field"); v != "" {
		// Fluent Bit's form is "key value"; several are comma separated here.
		var f []byte
		for _, kv := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(strings.TrimSpace(kv), " ")
			if !ok || k == "" {
				return nil, fmt.Errorf("parameter %q: %q is not \"key value\"", "event_field", kv)
			}
			if len(f) > 0 {
				f = append(f, ',')
			}
			f = jsonstr.Append(f, k)
			f = append(f, ':')
			f = jsonstr.Append(f, strings.TrimSpace(val))
		}
		x.fields = f
	}
	return x, nil
}

func appendKV(b []byte, k, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, k...)
	b = append(b, '"', ':')
	return jsonstr.Append(b, v)
}

// Name implements exporters.Exporter.
func (x *Splunk) Name() string { return x.name }

// Encode renders events as HEC envelopes, calling emit once per request
// body of at most the configured size (one oversized event gets a body of
// its own). The body slice is reused after emit returns.
func (x *Splunk) Encode(events []exporters.Event, emit func(body []byte, n int) error) error {
	return exporters.SplitBodies(events, x.maxBody, 160, x.appendEvent, emit)
}

func (x *Splunk) appendEvent(b []byte, e *exporters.Event) []byte {
	b = append(b, `{"time":`...)
	ms := max(e.Time.UnixMilli(), 0) // HEC wants epoch seconds; nothing predates 1970 here
	b = strconv.AppendInt(b, ms/1000, 10)
	b = append(b, '.')
	frac := ms % 1000
	b = append(b, byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	b = append(b, x.prefix...)
	if e.Kind == exporters.Runtime {
		b = append(b, `,"sourcetype":"flexgw:runtime"`...)
	} else {
		b = append(b, `,"sourcetype":"flexgw:access"`...)
	}
	b = append(b, `,"event":`...)
	b = append(b, e.JSON...)
	if len(x.fields) > 0 {
		b = append(b, `,"fields":{`...)
		b = append(b, x.fields...)
		b = append(b, '}')
	}
	return append(b, '}', '\n')
}

// hecReply is HEC's JSON answer.
type hecReply struct {
	Text  string `json:"text"`
	Code  int    `json:"code"`
	AckID *int64 `json:"ackId"`
}

// Export implements exporters.Exporter.
func (x *Splunk) Export(ctx context.Context, events []exporters.Event) error {
	return exporters.ExportAll(ctx, x, events)
}

// Probe implements exporters.Prober: HEC accepts connections again.
func (x *Splunk) Probe(ctx context.Context) error { return exporters.DialProbe(ctx, x.eventURL) }

// errStop ends SplitRanges early; it never leaves this package.
var errStop = errors.New("stop")

// sentReq is a request HEC took, waiting for its indexer acknowledgement.
type sentReq struct {
	lo, hi int
	id     int64
}

// ExportRequests implements exporters.RequestExporter: each request of at
// most max_body_bytes is confirmed on its own, by its 2xx answer or, with
// indexer acknowledgement, by its ackId turning true.
func (x *Splunk) ExportRequests(ctx context.Context, events []exporters.Event, report func(exporters.Outcome)) {
	zbuf := exporters.GetBuffer()
	defer exporters.PutBuffer(zbuf)
	var waiting []sentReq
	_ = exporters.SplitRanges(events, x.maxBody, 160, x.appendEvent, func(body []byte, lo, hi int) error {
		id, err := x.post(ctx, zbuf, body)
		switch {
		case err != nil:
			report(exporters.Outcome{Lo: lo, Hi: hi, Err: err})
			if !exporters.Continue(err) {
				return errStop
			}
		case x.ack:
			waiting = append(waiting, sentReq{lo, hi, id})
		default:
			report(exporters.Outcome{Lo: lo, Hi: hi})
		}
		return nil
	})
	if len(waiting) > 0 {
		x.waitAcks(ctx, waiting, report)
	}
}

// post sends one body and returns its ackId when acknowledgement is on.
func (x *Splunk) post(ctx context.Context, zbuf *bytes.Buffer, body []byte) (int64, error) {
	resp, err := x.events.Post(ctx, zbuf, body)
	if err != nil || !x.ack {
		return 0, err
	}
	var r hecReply
	if err := json.Unmarshal(resp, &r); err != nil || r.AckID == nil {
		// HEC took the events but gave nothing to confirm them by: the
		// outcome is unknown, so resend (at least once).
		return 0, &exporters.Error{Status: 200, Retryable: true, Body: resp,
			Err: fmt.Errorf("indexer acknowledgement is on but HEC returned no ackId")}
	}
	return *r.AckID, nil
}

func (x *Splunk) header(req *http.Request) {
	for k, v := range x.events.Header {
		req.Header[k] = v
	}
}

// waitAcks polls /services/collector/ack, reporting each request as its
// ackId turns true. A poll that fails is repeated; a request still
// unacknowledged after ack_timeout has an unknown outcome and is reported
// as a retryable failure (resent: at least once delivery).
func (x *Splunk) waitAcks(ctx context.Context, reqs []sentReq, report func(exporters.Outcome)) {
	deadline := time.Now().Add(x.ackTimeout)
	pending := make(map[int64]sentReq, len(reqs))
	for _, r := range reqs {
		pending[r.id] = r
	}
	fail := func(err error) {
		for id, r := range pending {
			report(exporters.Outcome{Lo: r.lo, Hi: r.hi, Err: err})
			delete(pending, id)
		}
	}
	t := time.NewTimer(0)
	defer t.Stop()
	var lastErr error
	for len(pending) > 0 {
		select {
		case <-ctx.Done():
			fail(&exporters.Error{Retryable: true, Err: ctx.Err()})
			return
		case <-t.C:
		}
		if err := x.pollAcks(ctx, pending, report); err != nil {
			lastErr = err
		}
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			msg := fmt.Errorf("indexer acknowledgement: %d requests still pending after %s (last poll error: %v)", len(pending), x.ackTimeout, lastErr)
			fail(&exporters.Error{Status: 200, Retryable: true, Err: msg})
			return
		}
		t.Reset(x.ackPoll)
	}
}

// pollAcks asks HEC once about every pending ackId and reports (and
// removes) the acknowledged ones.
func (x *Splunk) pollAcks(ctx context.Context, pending map[int64]sentReq, report func(exporters.Outcome)) error {
	q := struct {
		Acks []int64 `json:"acks"`
	}{Acks: make([]int64, 0, len(pending))}
	for id := range pending {
		q.Acks = append(q.Acks, id)
	}
	body, _ := json.Marshal(q)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, x.ackURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	x.header(req)
	resp, err := exporters.Do(x.client, req, 1<<20)
	if err != nil {
		return err
	}
	var r struct {
		Acks map[string]bool `json:"acks"`
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		return fmt.Errorf("decode ack reply: %w", err)
	}
	for k, ok := range r.Acks {
		id, err := strconv.ParseInt(k, 10, 64)
		if err != nil || !ok {
			continue
		}
		if sr, found := pending[id]; found {
			delete(pending, id)
			report(exporters.Outcome{Lo: sr.lo, Hi: sr.hi})
		}
	}
	return nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
