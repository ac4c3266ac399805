package exporters

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flexgw/flexgw/internal/jsonstr"
)

// DateField is Fluent Bit's json_date_key / json_date_format pair: the
// record's timestamp added as a field of the JSON record, as the http,
// stdout and file outputs write it.
type DateField struct {
	// Key is the field name ("" adds none; Fluent Bit's default is "date").
	Key string
	// Format is double, epoch, epoch_ms, iso8601 or java_sql_timestamp.
	Format string
}

// ParseDateField reads json_date_key (default def; "false" or "off" for
// none) and json_date_format (default double).
func ParseDateField(p Params, def string) (DateField, error) {
	d := DateField{Key: def, Format: "double"}
	if v, ok := p["json_date_key"]; ok && v != "" {
		d.Key = v
		switch strings.ToLower(v) {
		case "false", "off", "no":
			d.Key = ""
		}
	}
	if v := strings.ToLower(p.Get("json_date_format")); v != "" {
		switch v {
		case "double", "epoch", "epoch_ms", "iso8601", "java_sql_timestamp":
			d.Format = v
		default:
			return d, fmt.Errorf("parameter %q: %q is not supported (use double, epoch, epoch_ms, iso8601 or java_sql_timestamp)", "json_date_format", v)
		}
	}
	return d, nil
}

// AppendTime appends t in format (a JSON number or string).
func AppendTime(b []byte, t time.Time, format string) []byte {
	t = t.UTC()
	switch format {
	case "epoch":
		return strconv.AppendInt(b, t.Unix(), 10)
	case "epoch_ms":
		return strconv.AppendInt(b, t.UnixMilli(), 10)
	case "iso8601":
		b = append(b, '"')
		b = t.AppendFormat(b, "2006-01-02T15:04:05.000000Z")
		return append(b, '"')
	case "java_sql_timestamp":
		b = append(b, '"')
		b = t.AppendFormat(b, "2006-01-02 15:04:05.000000")
		return append(b, '"')
	}
	return strconv.AppendFloat(b, float64(t.UnixMicro())/1e6, 'f', 6, 64)
}

// AppendRecord appends e's JSON object with the date field first (when
// d.Key is set), as Fluent Bit does.
func (d DateField) AppendRecord(b []byte, e *Event) []byte {
	j := e.JSON
	if d.Key == "" || len(j) < 2 || j[0] != '{' {
		return append(b, j...)
	}
	b = append(b, '{')
	b = jsonstr.Append(b, d.Key)
	b = append(b, ':')
	b = AppendTime(b, e.Time, d.Format)
	i := 1
	for i < len(j) && (j[i] == ' ' || j[i] == '\t' || j[i] == '\n' || j[i] == '\r') {
		i++
	}
	if i < len(j) && j[i] != '}' {
		b = append(b, ',')
	}
	return append(b, j[1:]...)
}

// HeaderLines splits a list-valued parameter (config gives lists as
// newline-separated values) into "Name value" pairs. Errors never quote
// the value.
func HeaderLines(key, v string) ([][2]string, error) {
	var out [][2]string
	for i, line := range strings.Split(v, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, val, ok := strings.Cut(line, " ")
		if !ok || k == "" || strings.ContainsAny(k, ":\r\t") {
			// Not quoted: headers carry tokens.
			return nil, fmt.Errorf("parameter %q: entry %d is not \"Name value\" (a header name, a space, the value)", key, i+1)
		}
		out = append(out, [2]string{k, strings.TrimSpace(val)})
	}
	return out, nil
}
