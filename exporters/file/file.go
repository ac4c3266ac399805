// Package file is Fluent Bit's file output: each record appended as a
// line to path/file (Flex's reference guide writes runtime and access
// logs to /var/log/log.txt this way), in Fluent Bit's formats out_file
// (default: `tag: [time, record]`), plain (the JSON record), csv, ltsv or
// template. Without file, records go to path/<tag> (flexgw.access,
// flexgw.runtime), as Fluent Bit names the file after the tag. The file
// is opened for appending per batch, so logrotate's move-and-create
// works; a batch is confirmed once written.
package file

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/flexgw/flexgw/exporters"
)

// Keys are the parameters of a file output (Fluent Bit's).
var Keys = []string{"path", "file", "format", "delimiter", "label_delimiter", "template", "mkdir"}

// SecretParams: a file output has no credentials.
var SecretParams = []string{}

// File is the file exporter.
type File struct {
	name   string
	dir    string
	file   string // "": named after the tag
	mkdir  bool
	format exporters.LineFormat
}

var _ exporters.Exporter = (*File)(nil)

// New validates params and returns the exporter. It does no I/O.
func New(name string, params map[string]string, _ exporters.Settings) (*File, error) {
	p := exporters.Normalize(params)
	if err := p.CheckKeys(Keys...); err != nil {
		return nil, err
	}
	x := &File{name: name, dir: p.Get("path"), file: p.Get("file")}
	if x.dir == "" && x.file == "" {
		return nil, fmt.Errorf("parameter %q or %q is required (where to write)", "file", "path")
	}
	if x.dir == "" && !filepath.IsAbs(x.file) {
		return nil, fmt.Errorf("parameter %q: %q must be an absolute path unless %q names its directory", "file", x.file, "path")
	}
	if x.dir != "" && !filepath.IsAbs(x.dir) {
		return nil, fmt.Errorf("parameter %q: %q must be an absolute path", "path", x.dir)
	}
	var err error
	if x.mkdir, err = p.Bool("mkdir", false); err != nil {
		return nil, err
	}
	if x.format, err = exporters.ParseFileFormat(p); err != nil {
		return nil, err
	}
	return x, nil
}

// Name implements exporters.Exporter.
func (x *File) Name() string { return x.name }

func (x *File) pathFor(k exporters.Kind) string {
	name := x.file
	if name == "" {
		name = k.Tag()
	}
	if x.dir == "" {
		return name
	}
	return filepath.Join(x.dir, name)
}

// Export appends the batch, one write per file.
func (x *File) Export(_ context.Context, events []exporters.Event) error {
	bufs := map[string][]byte{}
	var order []string
	for i := range events {
		p := x.pathFor(events[i].Kind)
		if _, ok := bufs[p]; !ok {
			order = append(order, p)
		}
		bufs[p] = x.format.AppendLine(bufs[p], &events[i], i)
	}
	for _, p := range order {
		if err := appendFile(p, bufs[p], x.mkdir); err != nil {
			return &exporters.Error{Retryable: true, Err: err}
		}
	}
	return nil
}

func appendFile(path string, b []byte, mkdir bool) error {
	if mkdir {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
