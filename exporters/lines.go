package exporters

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Tag is the Fluent Bit tag of an event's stream, as the file and stdout
// outputs print it.
func (k Kind) Tag() string {
	if k == Runtime {
		return "flexgw.runtime"
	}
	return "flexgw.access"
}

// appendFLBTime appends a timestamp as Fluent Bit prints it: seconds and
// nanoseconds, "1700000000.123456789".
func appendFLBTime(b []byte, t time.Time) []byte {
	b = strconv.AppendInt(b, t.Unix(), 10)
	b = append(b, '.')
	ns := strconv.AppendInt(nil, int64(t.Nanosecond()), 10)
	for i := len(ns); i < 9; i++ {
		b = append(b, '0')
	}
	return append(b, ns...)
}

// LineFormat renders one event as one line of Fluent Bit's file output
// (formats out_file, plain, csv, ltsv, template) or stdout output.
type LineFormat struct {
	name      string
	delim     string
	labelSep  string
	template  []templatePart
	date      DateField
	tagPrefix bool // stdout's default: "[n] tag: [time, record]"
}

type templatePart struct {
	lit string
	key string // "" for a literal
}

// ParseFileFormat reads the file output's format, delimiter,
// label_delimiter and template parameters.
func ParseFileFormat(p Params) (LineFormat, error) {
	f := LineFormat{name: strings.ToLower(p.Get("format"))}
	switch f.name {
	case "", "out_file":
		f.name = "out_file"
	case "plain":
	case "csv":
		f.delim = delimiter(p.Get("delimiter"), ",")
	case "ltsv":
		f.delim = delimiter(p.Get("delimiter"), "\t")
		f.labelSep = delimiter(p.Get("label_delimiter"), ":")
	case "template":
		t := p.Get("template")
		if t == "" {
			t = "{time} {message}"
		}
		f.template = parseTemplate(strings.TrimRight(t, "\n"))
	case "msgpack":
		return f, fmt.Errorf("parameter %q: msgpack is not supported (use out_file, plain, csv, ltsv or template)", "format")
	default:
		return f, fmt.Errorf("parameter %q: %q is not supported (use out_file, plain, csv, ltsv or template)", "format", f.name)
	}
	return f, nil
}

// ParseStdoutFormat reads the stdout output's format (default: Fluent
// Bit's "[n] tag: [time, record]" lines, the record as JSON; json_lines
// and json_stream: one JSON record per line; json: a JSON array per
// batch) and its json_date_key / json_date_format.
func ParseStdoutFormat(p Params) (LineFormat, error) {
	f := LineFormat{name: strings.ToLower(p.Get("format"))}
	switch f.name {
	case "", "msgpack":
		f.name, f.tagPrefix = "msgpack", true
	case "json", "json_lines", "json_stream":
	default:
		return f, fmt.Errorf("parameter %q: %q is not supported (use msgpack, json, json_lines or json_stream)", "format", f.name)
	}
	var err error
	f.date, err = ParseDateField(p, "date")
	return f, err
}

// JSONArray reports whether a batch is written as one JSON array.
func (f LineFormat) JSONArray() bool { return f.name == "json" }

func delimiter(v, def string) string {
	switch strings.ToLower(v) {
	case "":
		return def
	case `\t`, "tab":
		return "\t"
	case "space":
		return " "
	case "comma":
		return ","
	}
	return v
}

// parseTemplate splits "{key} text {other}" into parts.
func parseTemplate(t string) []templatePart {
	var parts []templatePart
	for t != "" {
		i := strings.IndexByte(t, '{')
		j := strings.IndexByte(t[max(i, 0):], '}')
		if i < 0 || j < 0 {
			parts = append(parts, templatePart{lit: t})
			break
		}
		if i > 0 {
			parts = append(parts, templatePart{lit: t[:i]})
		}
		parts = append(parts, templatePart{key: t[i+1 : i+j]})
		t = t[i+j+1:]
	}
	return parts
}

// AppendLine appends one event in the format, newline included; n is the
// event's number in the batch (stdout's "[n]").
func (f LineFormat) AppendLine(b []byte, e *Event, n int) []byte {
	switch f.name {
	case "plain":
		b = append(b, e.JSON...)
	case "csv", "ltsv":
		b = f.appendFields(b, e)
	case "template":
		for _, p := range f.template {
			if p.key == "" {
				b = append(b, p.lit...)
				continue
			}
			b = appendTemplateValue(b, e, p.key)
		}
	case "msgpack": // stdout default
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, "] "...)
		b = append(b, e.Kind.Tag()...)
		b = append(b, ": ["...)
		b = appendFLBTime(b, e.Time)
		b = append(b, ", "...)
		b = append(b, e.JSON...)
		b = append(b, ']')
	case "json", "json_lines", "json_stream":
		b = f.date.AppendRecord(b, e)
	default: // out_file
		b = append(b, e.Kind.Tag()...)
		b = append(b, ": ["...)
		b = appendFLBTime(b, e.Time)
		b = append(b, ", "...)
		b = append(b, e.JSON...)
		b = append(b, ']')
	}
	return append(b, '\n')
}

// appendFields writes csv (time, then each value) or ltsv (time:..., then
// key:value) from the record's top-level fields.
func (f LineFormat) appendFields(b []byte, e *Event) []byte {
	if f.labelSep != "" {
		b = append(b, "time"...)
		b = append(b, f.labelSep...)
	}
	b = appendFLBTime(b, e.Time)
	_ = EachField(e.JSON, func(key string, val []byte) {
		b = append(b, f.delim...)
		if f.labelSep != "" {
			b = append(b, key...)
			b = append(b, f.labelSep...)
			b = append(b, unquoteBytes(val)...)
			return
		}
		if len(val) > 0 && val[0] == '"' {
			// CSV: strings quoted, quotes doubled (RFC 4180).
			b = append(b, '"')
			b = append(b, bytes.ReplaceAll(unquoteBytes(val), []byte(`"`), []byte(`""`))...)
			b = append(b, '"')
			return
		}
		b = append(b, val...)
	})
	return b
}

// appendTemplateValue writes a template placeholder: {time} is the
// timestamp, other names the record's field (strings unquoted, other
// values as JSON, missing ones empty).
func appendTemplateValue(b []byte, e *Event, key string) []byte {
	if key == "time" {
		return appendFLBTime(b, e.Time)
	}
	var found []byte
	_ = EachField(e.JSON, func(k string, v []byte) {
		if found == nil && k == key {
			found = v
		}
	})
	if len(found) > 0 && found[0] == '"' {
		return append(b, unquoteBytes(found)...)
	}
	return append(b, found...)
}

// EachField calls fn with each top-level member of a JSON object, in
// order: the key unescaped, the value as raw JSON. For the file and
// stdout formats, which are not on the hot path.
func EachField(obj []byte, fn func(key string, val []byte)) error {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("not a JSON object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		k, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		fn(k, raw)
	}
	return nil
}

// unquoteBytes returns a JSON string's text, or v itself when it is not a
// string.
func unquoteBytes(v []byte) []byte {
	var s string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return v
	}
	return []byte(s)
}
