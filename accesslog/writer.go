package accesslog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Sink receives finished access-log records. Write must not retain rec
// after it returns: the data plane pools records and reuses them.
type Sink interface {
	Write(rec *Record)
}

// multiSink fans one record out to several sinks.
type multiSink []Sink

func (m multiSink) Write(rec *Record) {
	for _, s := range m {
		s.Write(rec)
	}
}

// MultiSink returns a Sink that writes every record to each of sinks in
// order. Nil sinks are dropped; with none left it returns nil, so the data
// plane skips building records nobody reads.
func MultiSink(sinks ...Sink) Sink {
	var out multiSink
	for _, s := range sinks {
		if s != nil {
			out = append(out, s)
		}
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	return out
}

// FileWriter writes records as JSON lines to a file or stdout. Write only
// appends to an in-memory buffer under a mutex; a background goroutine does
// the I/O, so a slow disk or a stalled stdout pipe never blocks a request.
// When the pending buffer exceeds MaxPending, records are dropped (and
// counted) rather than growing memory without bound.
type FileWriter struct {
	out    io.Writer
	closer io.Closer // nil for stdout

	mu      sync.Mutex
	pending []byte
	spare   []byte
	closed  bool

	kick    chan struct{}
	done    chan struct{}
	dropped atomic.Uint64
	werr    atomic.Pointer[error]
}

// Tunables of FileWriter.
const (
	// FlushInterval bounds how long a record waits in memory.
	FlushInterval = 200 * time.Millisecond
	// flushSize wakes the writer early once this much is pending.
	flushSize = 64 << 10
	// MaxPending is the most buffered output before records are dropped.
	MaxPending = 8 << 20
)

// NewFileWriter opens path for appending (creating it 0644); path "-"
// writes to stdout.
func NewFileWriter(path string) (*FileWriter, error) {
	if path == "-" {
		return newWriter(os.Stdout, nil), nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("access log %s: %w", path, err)
	}
	return newWriter(f, f), nil
}

// NewWriter writes JSON lines to w (which FileWriter does not close).
func NewWriter(w io.Writer) *FileWriter { return newWriter(w, nil) }

func newWriter(out io.Writer, c io.Closer) *FileWriter {
	w := &FileWriter{
		out:     out,
		closer:  c,
		pending: make([]byte, 0, flushSize),
		spare:   make([]byte, 0, flushSize),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	go w.loop()
	return w
}

// Write appends rec as one JSON line.
func (w *FileWriter) Write(rec *Record) {
	w.mu.Lock()
	if w.closed || len(w.pending) > MaxPending {
		w.mu.Unlock()
		w.dropped.Add(1)
		return
	}
	w.pending = rec.AppendJSON(w.pending)
	w.pending = append(w.pending, '\n')
	if len(w.pending) >= flushSize {
		// Under the lock, so Close cannot close kick between check and send.
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	w.mu.Unlock()
}

// Dropped reports how many records were discarded because output could
// not keep up (or arrived after Close).
func (w *FileWriter) Dropped() uint64 { return w.dropped.Load() }

func (w *FileWriter) loop() {
	defer close(w.done)
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		var closing bool
		select {
		case <-t.C:
		case _, ok := <-w.kick:
			closing = !ok
		}
		w.flush()
		if closing {
			return
		}
	}
}

// flush swaps the pending buffer out under the lock and writes it without
// holding the lock.
func (w *FileWriter) flush() {
	w.mu.Lock()
	buf := w.pending
	w.pending = w.spare[:0]
	w.mu.Unlock()
	if len(buf) > 0 {
		if _, err := w.out.Write(buf); err != nil {
			w.werr.Store(&err)
		}
	}
	w.mu.Lock()
	if cap(buf) > 4*MaxPending {
		buf = make([]byte, 0, flushSize) // do not keep a burst's memory forever
	}
	w.spare = buf[:0]
	w.mu.Unlock()
}

// Close flushes what is pending and closes the file (not stdout). Records
// written after Close are dropped.
func (w *FileWriter) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.kick)
	w.mu.Unlock()
	<-w.done
	var err error
	if p := w.werr.Load(); p != nil {
		err = fmt.Errorf("access log: write: %w", *p)
	}
	if w.closer != nil {
		if cerr := w.closer.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("access log: close: %w", cerr))
		}
	}
	return err
}

var (
	_ Sink = (*FileWriter)(nil)
	_ Sink = multiSink(nil)
)
