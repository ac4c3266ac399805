// Package logpipe carries access and runtime logs from wherever they are
// produced (the built-in data plane in process, Envoy's JSON access log
// through Fluent Bit, the agent's own slog records) to the configured
// aggregators without loss: decode → enrich → redact → sample → durable
// per-exporter queue → batch → export with retries.
package logpipe

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/exporters"
	"github.com/flexgw/flexgw/internal/jsonstr"
)

// Field is one top-level member of a log record: its key and its value as
// raw, validated JSON. Records stay in this form from decoding to the
// exporter so nothing is unmarshalled into Go values on the hot path.
type Field struct {
	Key string
	Val []byte
}

// Entry is one decoded log record.
type Entry struct {
	Time   time.Time
	Kind   exporters.Kind
	Fields []Field
}

// Get returns the raw JSON value of key, or nil.
func (e *Entry) Get(key string) []byte {
	for i := range e.Fields {
		if e.Fields[i].Key == key {
			return e.Fields[i].Val
		}
	}
	return nil
}

// Set replaces key's value or appends the field.
func (e *Entry) Set(key string, val []byte) {
	for i := range e.Fields {
		if e.Fields[i].Key == key {
			e.Fields[i].Val = val
			return
		}
	}
	e.Fields = append(e.Fields, Field{Key: key, Val: val})
}

// String returns the value of a string field ("" for null, missing or
// non-string values).
func (e *Entry) String(key string) string {
	v := e.Get(key)
	if len(v) < 2 || v[0] != '"' {
		return ""
	}
	s, err := unquote(v)
	if err != nil {
		return ""
	}
	return s
}

// Int returns the value of an integer field (0 when not an integer).
func (e *Entry) Int(key string) int64 {
	n, _ := strconv.ParseInt(string(e.Get(key)), 10, 64)
	return n
}

// AppendJSON appends the entry as one JSON object.
func (e *Entry) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	for i, f := range e.Fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendKey(b, f.Key)
		b = append(b, f.Val...)
	}
	return append(b, '}')
}

// plainKey marks the bytes a key may hold to be copied between quotes as
// it is.
var plainKey = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendKey appends k as a JSON string and a colon. Keys are almost
// always plain ASCII: checked by table, copied in one go.
func appendKey(b []byte, k string) []byte {
	for i := 0; i < len(k); i++ {
		if !plainKey[k[i]] {
			return append(jsonstr.Append(b, k), ':')
		}
	}
	b = append(b, '"')
	b = append(b, k...)
	return append(b, '"', ':')
}

// Message is a one-line summary: "GET /path 200" for access logs, the
// message for runtime logs.
func (e *Entry) Message() string {
	if e.Kind == exporters.Runtime {
		return e.String("message")
	}
	m, p := e.String("method"), e.String("path")
	if m == "" && p == "" {
		if s := e.String("log"); s != "" {
			return s
		}
		return e.String("message")
	}
	return m + " " + p + " " + string(e.Get("response_code"))
}

// ErrNotObject is returned for input that is not one JSON object.
var ErrNotObject = errors.New("not a JSON object")

// DecodeJSON decodes one JSON access-log line (Envoy's json_format or the
// built-in data plane's). The entry's values alias line, so line must not
// be reused while the entry is alive. Time comes from start_time, falling
// back to now.
func DecodeJSON(line []byte) (Entry, error) {
	e := Entry{Kind: exporters.Access, Fields: make([]Field, 0, len(accesslog.Fields)+4)}
	var err error
	e.Fields, err = splitObject(line, e.Fields)
	if err != nil {
		return e, err
	}
	e.Time = entryTime(&e, time.Time{})
	return e, nil
}

// FromRecord converts an in-process record. It owns the result.
func FromRecord(r *accesslog.Record) Entry {
	// AppendJSON always produces a valid object; splitting it is cheaper
	// than a second hand-written encoder that would have to stay in sync.
	e, _ := DecodeJSON(r.AppendJSON(make([]byte, 0, 640)))
	e.Time = r.StartTime
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	return e
}

func entryTime(e *Entry, fallback time.Time) time.Time {
	if v := e.Get("start_time"); len(v) > 2 && v[0] == '"' {
		if t, err := time.Parse(time.RFC3339Nano, string(v[1:len(v)-1])); err == nil {
			return t
		}
	}
	if v := e.Get("time"); len(v) > 2 && v[0] == '"' {
		if t, err := time.Parse(time.RFC3339Nano, string(v[1:len(v)-1])); err == nil {
			return t
		}
	}
	if !fallback.IsZero() {
		return fallback
	}
	return time.Now()
}

// splitObject parses a JSON object into its top-level fields, validating
// every value strictly (so exporters can embed values verbatim).
func splitObject(b []byte, dst []Field) ([]Field, error) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return dst, ErrNotObject
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		if skipWS(b, i+1) != len(b) {
			return dst, fmt.Errorf("%w: trailing data", ErrNotObject)
		}
		return dst, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return dst, fmt.Errorf("%w: expected a key at offset %d", ErrNotObject, i)
		}
		end, err := scanString(b, i)
		if err != nil {
			return dst, err
		}
		key, err := internKey(b[i:end])
		if err != nil {
			return dst, err
		}
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return dst, fmt.Errorf("%w: expected ':' at offset %d", ErrNotObject, i)
		}
		i = skipWS(b, i+1)
		vend, err := scanValue(b, i, 0)
		if err != nil {
			return dst, err
		}
		dst = append(dst, Field{Key: key, Val: b[i:vend]})
		i = skipWS(b, vend)
		if i >= len(b) {
			return dst, fmt.Errorf("%w: unterminated", ErrNotObject)
		}
		if b[i] == '}' {
			if skipWS(b, i+1) != len(b) {
				return dst, fmt.Errorf("%w: trailing data", ErrNotObject)
			}
			return dst, nil
		}
		if b[i] != ',' {
			return dst, fmt.Errorf("%w: expected ',' at offset %d", ErrNotObject, i)
		}
		i = skipWS(b, i+1)
	}
}

// knownKeys interns the access-log field names so decoding a line does not
// allocate a string per key.
var knownKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range append(append([]string{}, accesslog.Fields...), "host", "log", "message", "time", "level", "component", "stream") {
		m[k] = k
	}
	return m
}()

func internKey(q []byte) (string, error) {
	if k, ok := knownKeys[string(q[1:len(q)-1])]; ok {
		return k, nil
	}
	return unquote(q)
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

const maxDepth = 64

var errSyntax = errors.New("invalid JSON")

// scanValue returns the end of the JSON value starting at i.
func scanValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, errSyntax
	}
	switch c := b[i]; {
	case c == '"':
		return scanString(b, i)
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return i, fmt.Errorf("%w: nested too deep", errSyntax)
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1, nil
		}
		for {
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return i, errSyntax
				}
				end, err := scanString(b, i)
				if err != nil {
					return i, err
				}
				i = skipWS(b, end)
				if i >= len(b) || b[i] != ':' {
					return i, errSyntax
				}
				i = skipWS(b, i+1)
			}
			end, err := scanValue(b, i, depth+1)
			if err != nil {
				return i, err
			}
			i = skipWS(b, end)
			if i >= len(b) {
				return i, errSyntax
			}
			if b[i] == closer {
				return i + 1, nil
			}
			if b[i] != ',' {
				return i, errSyntax
			}
			i = skipWS(b, i+1)
		}
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	default:
		return scanNumber(b, i)
	}
}

func literal(b []byte, i int, lit string) (int, error) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), nil
	}
	return i, errSyntax
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func scanNumber(b []byte, i int) (int, error) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return i, errSyntax
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return i, errSyntax
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return i, errSyntax
		}
		i = j
	}
	return i, nil
}

// scanString returns the end (past the closing quote) of the string at i,
// rejecting control characters, bad escapes and invalid UTF-8.
func scanString(b []byte, i int) (int, error) {
	i++
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			if i+1 >= len(b) {
				return i, errSyntax
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return i, errSyntax
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return i, errSyntax
					}
				}
				i += 6
			default:
				return i, errSyntax
			}
		case c < 0x20:
			return i, errSyntax
		case c < utf8.RuneSelf:
			i++
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return i, fmt.Errorf("%w: invalid UTF-8", errSyntax)
			}
			i += n
		}
	}
	return i, fmt.Errorf("%w: unterminated string", errSyntax)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// unquote decodes a validated JSON string literal.
func unquote(q []byte) (string, error) {
	if len(q) < 2 {
		return "", errSyntax
	}
	s := q[1 : len(q)-1]
	if !strings.ContainsRune(string(s), '\\') {
		return string(s), nil
	}
	var out []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i+1 >= len(s) {
			return "", errSyntax
		}
		i++
		switch s[i] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if i+5 > len(s) {
				return "", errSyntax
			}
			n, err := strconv.ParseUint(string(s[i+1:i+5]), 16, 32)
			if err != nil {
				return "", errSyntax
			}
			r := rune(n)
			i += 4
			if r >= 0xD800 && r < 0xDC00 && i+6 < len(s)+0 && s[i+1] == '\\' && s[i+2] == 'u' {
				if n2, err := strconv.ParseUint(string(s[i+3:i+7]), 16, 32); err == nil && n2 >= 0xDC00 && n2 < 0xE000 {
					r = (r-0xD800)<<10 + (rune(n2) - 0xDC00) + 0x10000
					i += 6
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			out = append(out, s[i])
		}
	}
	return string(out), nil
}
