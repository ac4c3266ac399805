package agent

import (
	"bytes"
	"context"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/telemetry/metrics"
)

// tailAccessLog follows the JSON access log Envoy writes and hands each
// complete line to the log pipeline, the flexgw_* request metrics and the
// `flexgw top` statistics: the in-process equivalent of Fluent Bit's tail
// input. It starts at the end of the file as it is now (earlier lines
// belong to an earlier run), follows rotation (a new inode) and
// truncation, and never delivers half a line.
func (a *Agent) tailAccessLog(ctx context.Context, path string, interval time.Duration) {
	var (
		f      *os.File
		ino    uint64
		offset int64
		buf    []byte
	)
	open := func(fromEnd bool) {
		nf, err := os.Open(path)
		if err != nil {
			return
		}
		st, err := nf.Stat()
		if err != nil {
			nf.Close()
			return
		}
		if f != nil {
			f.Close()
		}
		f, ino, offset, buf = nf, inode(st), 0, buf[:0]
		if fromEnd {
			offset = st.Size()
		}
	}
	open(true)
	chunk := make([]byte, 256<<10)
	poll := func() {
		st, err := os.Stat(path)
		if err != nil {
			return
		}
		if f == nil || inode(st) != ino || st.Size() < offset {
			open(false)
			if f == nil {
				return
			}
		}
		for {
			n, err := f.ReadAt(chunk, offset)
			offset += int64(n)
			buf = append(buf, chunk[:n]...)
			if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
				a.ingestAccessLines(buf[:i+1])
				buf = append(buf[:0], buf[i+1:]...)
			}
			if err == io.EOF || n == 0 || err != nil {
				break
			}
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// Stopped after Envoy exited: what it wrote last (the
			// requests it finished while draining) is read too.
			poll()
			if f != nil {
				f.Close()
			}
			return
		case <-t.C:
			poll()
		}
	}
}

func (a *Agent) ingestAccessLines(lines []byte) {
	var m *metrics.Metrics
	if a.telemetry != nil {
		m = a.telemetry.Metrics
	}
	if a.pipeline != nil && !a.shipWithFluentBit {
		if bad, err := a.pipeline.IngestJSONLines(lines); err != nil || bad > 0 {
			a.log.Warn("access log lines not queued", "bad_lines", bad, "error", err)
		}
	}
	for len(lines) > 0 {
		line := lines
		if i := bytes.IndexByte(lines, '\n'); i >= 0 {
			line, lines = lines[:i], lines[i+1:]
		} else {
			lines = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		rec, err := accesslog.ParseJSON(line)
		if err != nil {
			continue
		}
		if m != nil {
			m.ObserveRecord(&rec)
		}
		if a.stats != nil {
			a.stats.Write(&rec)
		}
	}
}

func inode(st os.FileInfo) uint64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Ino
	}
	return 0
}
