// Package stdout is Fluent Bit's stdout output: records printed on the
// gateway's standard output (the journal under systemd, `docker logs` in
// a container), as Fluent Bit's `[n] tag: [time, record]` lines (format
// msgpack, the default; the record as JSON), one JSON record per line
// (json_lines, json_stream) or a JSON array per batch (json), with
// json_date_key / json_date_format.
package stdout

import (
	"context"
	"io"
	"os"
	"sync"

	"github.com/flexgw/flexgw/exporters"
)

// Keys are the parameters of a stdout output (Fluent Bit's).
var Keys = []string{"format", "json_date_key", "json_date_format"}

// SecretParams: a stdout output has no credentials.
var SecretParams = []string{}

// Stdout is the stdout exporter.
type Stdout struct {
	name   string
	w      io.Writer
	format exporters.LineFormat
}

var _ exporters.Exporter = (*Stdout)(nil)

// mu keeps the batches of several stdout outputs from interleaving.
var mu sync.Mutex

// New validates params and returns the exporter. It does no I/O.
func New(name string, params map[string]string, s exporters.Settings) (*Stdout, error) {
	p := exporters.Normalize(params)
	if err := p.CheckKeys(Keys...); err != nil {
		return nil, err
	}
	x := &Stdout{name: name, w: s.Stdout}
	if x.w == nil {
		x.w = os.Stdout
	}
	var err error
	if x.format, err = exporters.ParseStdoutFormat(p); err != nil {
		return nil, err
	}
	return x, nil
}

// Name implements exporters.Exporter.
func (x *Stdout) Name() string { return x.name }

// Export writes the batch in one write.
func (x *Stdout) Export(_ context.Context, events []exporters.Event) error {
	var b []byte
	if x.format.JSONArray() {
		b = append(b, '[')
	}
	for i := range events {
		if x.format.JSONArray() {
			if i > 0 {
				b = append(b, ',')
			}
			line := x.format.AppendLine(nil, &events[i], i)
			b = append(b, line[:len(line)-1]...)
			continue
		}
		b = x.format.AppendLine(b, &events[i], i)
	}
	if x.format.JSONArray() {
		b = append(b, ']', '\n')
	}
	mu.Lock()
	defer mu.Unlock()
	if _, err := x.w.Write(b); err != nil {
		return &exporters.Error{Retryable: true, Err: err}
	}
	return nil
}
