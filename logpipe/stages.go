package logpipe

import (
	"bytes"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flexgw/flexgw/internal/jsonstr"
)

// RedactOptions add to the always-redacted headers (Authorization, Cookie,
// Set-Cookie, Proxy-Authorization).
type RedactOptions struct {
	// Headers are header names; a record field named after one (any case,
	// '-' or '_', with a req_/request_/resp_/response_ prefix) or a member
	// of a nested header object is redacted.
	Headers []string
	// Fields are exact record field names.
	Fields []string
	// QueryParams are redacted inside path/url/uri values.
	QueryParams []string
}

// Redacted replaces every redacted value.
const Redacted = `"[REDACTED]"`

// DefaultRedactedHeaders are always redacted.
var DefaultRedactedHeaders = []string{"authorization", "cookie", "set-cookie", "proxy-authorization"}

// DefaultRedactedQueryParams are always redacted in paths.
var DefaultRedactedQueryParams = []string{"access_token", "api_key", "apikey", "client_secret", "token"}

type redactor struct {
	// decided caches isHeader per key: records repeat a few dozen keys.
	decided atomic.Pointer[map[string]bool] // copy on write
	mu      sync.Mutex
	headers map[string]bool
	fields  map[string]bool
	query   map[string]bool
}

func normHeader(s string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_")
}

func newRedactor(o RedactOptions) *redactor {
	r := &redactor{headers: map[string]bool{}, fields: map[string]bool{}, query: map[string]bool{}}
	for _, h := range append(append([]string{}, DefaultRedactedHeaders...), o.Headers...) {
		r.headers[normHeader(h)] = true
	}
	for _, f := range o.Fields {
		r.fields[f] = true
	}
	for _, q := range append(append([]string{}, DefaultRedactedQueryParams...), o.QueryParams...) {
		r.query[strings.ToLower(q)] = true
	}
	return r
}

func (r *redactor) isHeader(key string) bool {
	if m := r.decided.Load(); m != nil {
		if v, ok := (*m)[key]; ok {
			return v
		}
	}
	v := r.matchHeader(key)
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.decided.Load()
	if old != nil && len(*old) > 4096 {
		return v // hostile key churn: stop caching
	}
	m := make(map[string]bool, 16)
	if old != nil {
		for k, x := range *old {
			m[k] = x
		}
	}
	m[key] = v
	r.decided.Store(&m)
	return v
}

func (r *redactor) matchHeader(key string) bool {
	k := normHeader(key)
	if r.headers[k] {
		return true
	}
	for _, p := range []string{"req_", "request_", "resp_", "response_", "http_", "header_"} {
		if strings.HasPrefix(k, p) && r.headers[k[len(p):]] {
			return true
		}
	}
	return false
}

// keyRule is what redaction does with a top-level field, decided once
// per key.
type keyRule struct {
	key    string
	redact bool // a redacted header or field: the value goes
	query  bool // a path or URL: configured query parameters go
}

func (r *redactor) rule(key string) keyRule {
	kr := keyRule{key: key, redact: r.fields[key] || r.isHeader(key)}
	switch key {
	case "path", "url", "uri", "query", "request_uri", "original_path", "Path", "URL", "URI":
		kr.query = true
	}
	return kr
}

// apply redacts e in place.
func (r *redactor) apply(e *Entry) { r.applyCached(e, nil) }

// applyCached is apply with the rules of the previous record's fields, by
// position, in *rules (nil: none): records repeat one shape, so a field
// costs a string compare (usually of identical strings) instead of map
// lookups.
func (r *redactor) applyCached(e *Entry, rules *[]keyRule) {
	for i := range e.Fields {
		f := &e.Fields[i]
		var kr keyRule
		switch {
		case rules == nil:
			kr = r.rule(f.Key)
		case i < len(*rules) && (*rules)[i].key == f.Key:
			kr = (*rules)[i]
		default:
			kr = r.cachedRule(rules, i, f.Key)
		}
		if kr.redact {
			if string(f.Val) != "null" {
				f.Val = []byte(Redacted)
			}
			continue
		}
		switch {
		case len(f.Val) > 0 && f.Val[0] == '{':
			f.Val = r.object(f.Val, 0)
		case kr.query && len(f.Val) > 0 && f.Val[0] == '"':
			f.Val = r.queryValue(f.Val)
		}
	}
}

// cachedRule finds key's rule elsewhere in *rules (fields in another
// order) or decides it, and moves it to position i for the next record.
// The cache holds each key once and at most 256 keys (hostile records
// with ever-new keys only cost a decision each).
func (r *redactor) cachedRule(rules *[]keyRule, i int, key string) keyRule {
	rs := *rules
	for j := range rs {
		if kr := rs[j]; kr.key == key {
			if i < len(rs) {
				rs[i], rs[j] = rs[j], rs[i]
			}
			return kr
		}
	}
	kr := r.rule(key)
	switch {
	case i < len(rs) && len(rs) < 256:
		rs = append(rs, rs[i])
		rs[i] = kr
	case i < len(rs):
		rs[i] = kr
	case len(rs) < 256:
		rs = append(rs, kr)
	}
	*rules = rs
	return kr
}

// object redacts header-named members of a nested object (e.g. a
// "request_headers" map) at any depth.
func (r *redactor) object(v []byte, depth int) []byte {
	if depth > 8 {
		return v
	}
	fields, err := splitObject(v, nil)
	if err != nil {
		return v
	}
	changed := false
	for i := range fields {
		f := &fields[i]
		if (r.fields[f.Key] || r.isHeader(f.Key)) && string(f.Val) != "null" {
			f.Val = []byte(Redacted)
			changed = true
		} else if len(f.Val) > 0 && f.Val[0] == '{' {
			nv := r.object(f.Val, depth+1)
			if &nv[0] != &f.Val[0] {
				f.Val = nv
				changed = true
			}
		}
	}
	if !changed {
		return v
	}
	e := Entry{Fields: fields}
	return e.AppendJSON(nil)
}

// queryValue redacts configured query parameters in a quoted path or URL.
func (r *redactor) queryValue(v []byte) []byte {
	if bytes.IndexByte(v, '?') < 0 && bytes.IndexByte(v, '&') < 0 {
		return v
	}
	s, err := unquote(v)
	if err != nil {
		return v
	}
	base, q, ok := strings.Cut(s, "?")
	if !ok {
		base, q = "", s
	}
	parts := strings.Split(q, "&")
	changed := false
	for i, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if r.query[strings.ToLower(k)] {
			parts[i] = k + "=REDACTED"
			changed = true
		}
	}
	if !changed {
		return v
	}
	out := strings.Join(parts, "&")
	if ok {
		out = base + "?" + out
	}
	return jsonstr.Append(nil, out)
}

// SampleOptions thin access logs. Sampling is off (everything kept) unless
// Rate is in (0, 1).
type SampleOptions struct {
	// Rate is the fraction of ordinary records kept.
	Rate float64
	// SlowerThan keeps every request at least this slow (0: no such rule).
	SlowerThan time.Duration
}

// active reports whether sampling drops anything.
func (s SampleOptions) active() bool { return s.Rate > 0 && s.Rate < 1 }

// keep reports whether an access record survives sampling: every 5xx,
// every policy denial and every slow request always does.
func (s SampleOptions) keep(e *Entry) bool {
	if !s.active() {
		return true
	}
	if e.Int("response_code") >= 500 {
		return true
	}
	switch strings.ToLower(e.String("policy_outcome")) {
	case "deny", "denied", "reject", "rejected", "blocked", "unauthorized", "forbidden", "rate_limited":
		return true
	}
	if s.SlowerThan > 0 && time.Duration(e.Int("duration"))*time.Millisecond >= s.SlowerThan {
		return true
	}
	return rand.Float64() < s.Rate
}

// enricher adds gateway identity and configured labels to records that do
// not carry them already.
type enricher struct {
	gatewayID []byte
	host      []byte
	labels    []Field
}

func newEnricher(gatewayID, host string, labels map[string]string) *enricher {
	en := &enricher{}
	if gatewayID != "" {
		en.gatewayID = jsonstr.Append(nil, gatewayID)
	}
	if host != "" {
		en.host = jsonstr.Append(nil, host)
	}
	for k, v := range labels {
		en.labels = append(en.labels, Field{Key: k, Val: jsonstr.Append(nil, v)})
	}
	return en
}

func (en *enricher) apply(e *Entry) {
	if en.gatewayID != nil {
		if v := e.Get("gateway_id"); v == nil || string(v) == "null" {
			e.Set("gateway_id", en.gatewayID)
		}
	}
	if en.host != nil && e.Get("host") == nil {
		e.Set("host", en.host)
	}
	for _, l := range en.labels {
		if e.Get(l.Key) == nil {
			e.Fields = append(e.Fields, l)
		}
	}
}
