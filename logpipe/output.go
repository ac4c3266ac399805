package logpipe

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flexgw/flexgw/exporters"
	"github.com/flexgw/flexgw/internal/jsonstr"
	"github.com/flexgw/flexgw/ir/irlog"
	"github.com/flexgw/flexgw/logpipe/queue"
)

// ExporterStats are one output's counters, for /api/v1 and flexgw top.
//
// Its JSON (GET /api/v1/logpipe, the logpipe component of /api/v1/status)
// uses the admin API's camelCase keys, as /api/v1/top does.
type ExporterStats struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// RecordsIn were accepted into the durable queue.
	RecordsIn int64 `json:"recordsIn"`
	// Sent were confirmed by the aggregator.
	Sent int64 `json:"sent"`
	// Retried counts records in failed attempts that were retried.
	Retried int64 `json:"retried"`
	// Dropped were lost before delivery: the in-memory stage was full or
	// the queue's size cap pushed them out.
	Dropped int64 `json:"dropped"`
	// DeadLettered were refused by the aggregator and written to the
	// dead-letter file.
	DeadLettered  int64     `json:"deadLettered"`
	QueueBytes    int64     `json:"queueBytes"`
	QueueDepth    int       `json:"queueDepth"`
	LastError     string    `json:"lastError,omitempty"`
	LastErrorTime time.Time `json:"lastErrorAt,omitzero"`
}

// output is one configured output: its queue and its sender.
type output struct {
	name string
	dir  string
	q    *queue.Queue
	log  *slog.Logger
	opts *Options

	typ atomic.Value // string
	exp atomic.Value // exporters.Exporter
	cfg irlog.LogOutput

	in, sent, retried, memDropped, dead atomic.Int64

	errMu   sync.Mutex
	lastErr string
	lastAt  time.Time

	cancel  context.CancelFunc
	done    chan struct{}
	closing chan struct{}
	closeMu sync.Once
}

func openOutput(o irlog.LogOutput, exp exporters.Exporter, opts *Options) (*output, error) {
	dir := filepath.Join(opts.QueueDir, safeName(o.Name))
	if opts.Direct {
		// No queue: the caller's buffer (Fluent Bit's storage) holds the
		// records until DeliverMsgpack returns; the directory keeps only
		// the dead-letter file.
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("output %q: %w", o.Name, err)
		}
		out := &output{name: o.Name, dir: dir, opts: opts, cfg: o, log: opts.Logger.With("exporter", o.Name)}
		out.typ.Store(o.Type)
		out.exp.Store(exp)
		return out, nil
	}
	q, err := queue.Open(queue.Options{
		Dir:            dir,
		MaxBytes:       opts.Queue.MaxBytes,
		Fsync:          opts.Queue.Fsync,
		RejectWhenFull: opts.Queue.RejectWhenFull,
	})
	if err != nil {
		return nil, fmt.Errorf("output %q: %w", o.Name, err)
	}
	out := &output{name: o.Name, dir: dir, q: q, opts: opts, cfg: o,
		log: opts.Logger.With("exporter", o.Name)}
	out.typ.Store(o.Type)
	out.exp.Store(exp)
	return out, nil
}

// safeName keeps an output name usable as a directory name.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] == '.' {
		b = append([]byte("o"), b...)
	}
	return string(b)
}

func (o *output) stats() ExporterStats {
	var qs queue.Stats
	if o.q != nil {
		qs = o.q.Stats()
	}
	o.errMu.Lock()
	defer o.errMu.Unlock()
	return ExporterStats{
		Name: o.name, Type: o.typ.Load().(string),
		RecordsIn: o.in.Load(), Sent: o.sent.Load(), Retried: o.retried.Load(),
		Dropped: o.memDropped.Load() + qs.Dropped, DeadLettered: o.dead.Load(),
		QueueBytes: qs.Bytes, QueueDepth: qs.Depth,
		LastError: o.lastErr, LastErrorTime: o.lastAt,
	}
}

func (o *output) setErr(err error) {
	o.errMu.Lock()
	o.lastErr, o.lastAt = err.Error(), time.Now()
	o.errMu.Unlock()
}

// The queue record: unix nanos (uint64), kind, message length (uint16),
// then the JSON object and the message. The kind byte's top bit says the
// message follows the JSON; records of earlier releases, still queued
// after an upgrade, have it before (decodeItem reads both).
const (
	itemHeader   = 11
	messageAfter = 0x80
)

// encodeItem appends e's queue record to b.
func encodeItem(b []byte, e *Entry) []byte { return appendItem(b, e, nil) }

// appendItem appends e's queue record to b, or, with a span, finishes the
// record decodeMsgpackInto started in b (room for the header reserved at
// sp.start, the object written up to sp.end): fields that still alias
// what was written stay where they are, so a record nothing changed is
// not copied again. It allocates nothing unless a field other than the
// last ones changed or a message needs unescaping.
func appendItem(b []byte, e *Entry, sp *span) []byte {
	at, kept := len(b), 0
	if sp == nil {
		b = append(b, make([]byte, itemHeader)...)
		b = append(b, '{')
	} else {
		at = sp.start
		written := len(sp.vals) / 2
		for kept < written && kept < len(e.Fields) && aliases(e.Fields[kept].Val, b, sp.vals[2*kept], sp.vals[2*kept+1]) {
			kept++
		}
		end := sp.obj + 1
		if kept > 0 {
			end = sp.vals[2*kept-1]
		}
		if kept < written {
			// A field changed (redacted): the values after it may alias
			// the bytes about to be overwritten, so they move out first.
			detach(e.Fields[kept:])
		}
		b = b[:end]
	}
	for i := kept; i < len(e.Fields); i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendKey(b, e.Fields[i].Key)
		b = append(b, e.Fields[i].Val...)
	}
	b = append(b, '}')
	ms := len(b)
	b = appendMessage(b, e)
	n := len(b) - ms
	if n > 0xffff {
		n = 0xffff
		b = b[:ms+n]
	}
	binary.LittleEndian.PutUint64(b[at:], uint64(e.Time.UnixNano()))
	b[at+8] = byte(e.Kind) | messageAfter
	binary.LittleEndian.PutUint16(b[at+9:], uint16(n))
	return b
}

// detach copies the fields' values into one new buffer.
func detach(fields []Field) {
	n := 0
	for _, f := range fields {
		n += len(f.Val)
	}
	buf := make([]byte, 0, n)
	for i := range fields {
		at := len(buf)
		buf = append(buf, fields[i].Val...)
		fields[i].Val = buf[at:len(buf):len(buf)]
	}
}

// aliases reports whether v is exactly b[lo:hi] (the same memory).
func aliases(v, b []byte, lo, hi int) bool {
	return len(v) == hi-lo && len(v) > 0 && hi <= cap(b) && &v[0] == &b[:hi][lo]
}

// appendMessage appends e.Message() without building strings.
func appendMessage(b []byte, e *Entry) []byte {
	if e.Kind == exporters.Runtime {
		return appendUnquoted(b, e.Get("message"))
	}
	m, p := e.Get("method"), e.Get("path")
	if emptyString(m) && emptyString(p) {
		if l := e.Get("log"); !emptyString(l) {
			return appendUnquoted(b, l)
		}
		return appendUnquoted(b, e.Get("message"))
	}
	b = appendUnquoted(b, m)
	b = append(b, ' ')
	b = appendUnquoted(b, p)
	b = append(b, ' ')
	return append(b, e.Get("response_code")...)
}

// emptyString reports whether Entry.String would return "" for v.
func emptyString(v []byte) bool { return len(v) <= 2 || v[0] != '"' }

// appendUnquoted appends what Entry.String returns for the raw value v.
func appendUnquoted(b, v []byte) []byte {
	if emptyString(v) {
		return b
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return append(b, inner...)
	}
	s, err := unquote(v)
	if err != nil {
		return b
	}
	return append(b, s...)
}

// decodeItem reads a queue record; the event aliases b.
func decodeItem(b []byte) (exporters.Event, bool) {
	if len(b) < itemHeader {
		return exporters.Event{}, false
	}
	ml := int(binary.LittleEndian.Uint16(b[9:]))
	if len(b) < itemHeader+ml {
		return exporters.Event{}, false
	}
	ev := exporters.Event{
		Time: time.Unix(0, int64(binary.LittleEndian.Uint64(b))),
		Kind: exporters.Kind(b[8] &^ messageAfter),
	}
	if b[8]&messageAfter != 0 {
		ev.JSON = b[itemHeader : len(b)-ml : len(b)-ml]
		ev.Message = b[len(b)-ml:]
	} else {
		ev.Message = b[itemHeader : itemHeader+ml : itemHeader+ml]
		ev.JSON = b[itemHeader+ml:]
	}
	return ev, true
}

// closeQueue closes the output's queue, if it has one.
func (o *output) closeQueue() {
	if o.q != nil {
		_ = o.q.Close()
	}
}

// start runs the sender until stop or, once closing, the queue is empty.
func (o *output) start() {
	if o.q == nil {
		return // direct delivery: no sender
	}
	ctx, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	o.done = make(chan struct{})
	o.closing = make(chan struct{})
	o.closeMu = sync.Once{}
	go o.run(ctx)
}

// stop asks the sender to drain until ctx ends, then stops it.
func (o *output) stop(ctx context.Context) error {
	if o.done == nil {
		return nil
	}
	o.closeMu.Do(func() { close(o.closing) })
	select {
	case <-o.done:
		return nil
	case <-ctx.Done():
		o.cancel()
		<-o.done
		return ctx.Err()
	}
}

func (o *output) isClosing() bool {
	select {
	case <-o.closing:
		return true
	default:
		return false
	}
}

// batch is the batch in flight: read from the queue once, then sent
// request by request until every event is settled (confirmed by the
// aggregator or dead-lettered). A request that failed is resent alone;
// the queue moves past the batch only once all of it is settled, so a
// crash resends at most the batch in flight.
type batch struct {
	cur     queue.Cursor
	events  []exporters.Event
	settled []bool
	left    int
}

// pending returns the unsettled events and their indexes in b.events.
func (b *batch) pending() ([]exporters.Event, []int) {
	if b.left == len(b.events) {
		idx := make([]int, len(b.events))
		for i := range idx {
			idx[i] = i
		}
		return b.events, idx
	}
	evs := make([]exporters.Event, 0, b.left)
	idx := make([]int, 0, b.left)
	for i, done := range b.settled {
		if !done {
			evs = append(evs, b.events[i])
			idx = append(idx, i)
		}
	}
	return evs, idx
}

func (b *batch) settle(idx []int) {
	for _, i := range idx {
		if !b.settled[i] {
			b.settled[i] = true
			b.left--
		}
	}
}

// attemptResult sums up one attempt at a batch's pending events.
type attemptResult struct {
	confirmed, failed int
	// unreachable is set when a failure was a transport error: the
	// aggregator did not answer at all.
	unreachable bool
	retryAfter  time.Duration
	err         error
	// deadErr is a failure to write the dead-letter file.
	deadErr error
}

// send makes one attempt at every pending event of b, settling what the
// aggregator confirmed or refused for good.
func (o *output) send(ctx context.Context, b *batch) attemptResult {
	evs, idx := b.pending()
	var r attemptResult
	report := func(oc exporters.Outcome) {
		part, n := evs[oc.Lo:oc.Hi], oc.Hi-oc.Lo
		if oc.Err == nil {
			b.settle(idx[oc.Lo:oc.Hi])
			o.sent.Add(int64(n))
			r.confirmed += n
			return
		}
		o.setErr(oc.Err)
		xe := exporters.AsError(oc.Err)
		if !xe.Retryable {
			o.log.Error("aggregator refused a request; dead-lettered", "records", n, "status", xe.Status, "err", oc.Err)
			if derr := o.deadLetter(part, xe); derr != nil {
				// Keep the events queued rather than lose them silently.
				o.setErr(derr)
				o.log.Error("write dead letter", "err", derr)
				r.deadErr = derr
				return
			}
			b.settle(idx[oc.Lo:oc.Hi])
			o.dead.Add(int64(n))
			return
		}
		r.failed += n
		r.err = oc.Err
		o.retried.Add(int64(n))
		if xe.Status == 0 {
			r.unreachable = true
		}
		r.retryAfter = max(r.retryAfter, xe.RetryAfter)
	}
	exp := o.exp.Load().(exporters.Exporter)
	if rx, ok := exp.(exporters.RequestExporter); ok {
		rx.ExportRequests(ctx, evs, report)
	} else {
		report(exporters.Outcome{Lo: 0, Hi: len(evs), Err: exp.Export(ctx, evs)})
	}
	return r
}

func (o *output) run(ctx context.Context) {
	defer close(o.done)
	bo := o.opts.Batch
	var first time.Time
	var cur *batch
	var spare batch // the slices of the last batch, for the next
	attempt := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	wait := func(d time.Duration, wakeOnData bool) bool {
		timer.Reset(d)
		defer timer.Stop()
		var notify <-chan struct{}
		if wakeOnData {
			notify = o.q.Notify()
		}
		closing := o.closing
		if o.isClosing() {
			closing = nil
		}
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
		case <-notify:
		case <-closing:
		}
		return true
	}
	for {
		if ctx.Err() != nil {
			return
		}
		if cur == nil {
			// Decide from the queue's counters whether a batch is due, and
			// read only then: every append wakes this loop, and reading a
			// partial batch each time would read it over and over.
			st := o.q.Stats()
			if st.Depth == 0 {
				first = time.Time{}
				if o.isClosing() {
					return
				}
				if !wait(time.Hour, true) {
					return
				}
				continue
			}
			if st.Depth < bo.MaxRecords && st.Bytes-int64(st.Depth)*queue.FrameOverhead < int64(bo.MaxBytes) && !o.isClosing() {
				if first.IsZero() {
					first = time.Now()
				}
				if d := bo.FlushInterval - time.Since(first); d > 0 {
					if !wait(d, true) {
						return
					}
					continue
				}
			}
			items, c, err := o.q.Read(bo.MaxRecords, bo.MaxBytes)
			if err != nil {
				if errors.Is(err, queue.ErrClosed) {
					return
				}
				o.setErr(err)
				o.log.Error("read queue", "err", err)
				if !wait(time.Second, false) {
					return
				}
				continue
			}
			if len(items) == 0 {
				continue // dropped by the size cap since Stats
			}
			first = time.Time{}
			// The batch's slices are reused: it lives until acknowledged,
			// and the next one is read only then.
			events := spare.events[:0]
			for _, it := range items {
				if ev, ok := decodeItem(it); ok {
					events = append(events, ev)
				}
			}
			settled := append(spare.settled[:0], make([]bool, len(events))...)
			spare = batch{}
			cur = &batch{cur: c, events: events, settled: settled, left: len(events)}
		}
		r := o.send(ctx, cur)
		if ctx.Err() != nil {
			return
		}
		if cur.left == 0 {
			if err := o.q.Ack(cur.cur); err != nil {
				o.setErr(err)
			}
			clear(cur.events) // drop references into the queue's buffer
			spare = batch{events: cur.events, settled: cur.settled}
			cur, attempt = nil, 0
			continue
		}
		if r.deadErr != nil && r.failed == 0 {
			if !wait(time.Second, false) {
				return
			}
			continue
		}
		d := o.retryDelay(r, &attempt)
		o.log.Warn("export failed; will retry", "records", r.failed, "pending", cur.left, "attempt", attempt, "in", d, "err", r.err)
		if !o.retryWait(ctx, d, r.unreachable && r.retryAfter == 0, wait) {
			return
		}
	}
}

// retryDelay is the wait before the next attempt after r, the attempt
// count updated.
func (o *output) retryDelay(r attemptResult, attempt *int) time.Duration {
	// Back-off grows only while nothing gets through: a request the
	// aggregator confirmed resets it, so one failed request among many
	// waits the minimum.
	if r.confirmed > 0 {
		*attempt = 1
	} else {
		*attempt++
	}
	d := backoff(o.opts.Retry, *attempt)
	if !r.unreachable {
		// The aggregator answers: it is up and refusing for now (busy,
		// throttled), not gone; do not let the wait grow long.
		d = min(d, o.opts.Retry.AnsweringMax)
	}
	if r.retryAfter > 0 {
		d = min(r.retryAfter, o.opts.Retry.MaxRetryAfter)
	}
	return d
}

// retryWait waits d before the next attempt. When the aggregator could
// not be reached and the exporter can probe it, it probes every
// ProbeInterval and ends the wait as soon as the aggregator is reachable
// again, so a long back-off does not delay delivery after it recovers.
func (o *output) retryWait(ctx context.Context, d time.Duration, probe bool, wait func(time.Duration, bool) bool) bool {
	p, ok := o.exp.Load().(exporters.Prober)
	if !probe || !ok || d <= o.opts.Retry.ProbeInterval {
		return wait(d, false)
	}
	end := time.Now().Add(d)
	for {
		left := time.Until(end)
		if left <= 0 {
			return true
		}
		if !wait(min(left, o.opts.Retry.ProbeInterval), false) {
			return false
		}
		pctx, cancel := context.WithTimeout(ctx, o.opts.Retry.ProbeInterval)
		err := p.Probe(pctx)
		cancel()
		if err == nil {
			o.log.Info("aggregator reachable again; retrying now")
			return true
		}
	}
}

// backoff is exponential with full jitter between Min and Max.
func backoff(r RetryOptions, attempt int) time.Duration {
	d := r.Min
	for i := 1; i < attempt && d < r.Max; i++ {
		d *= 2
	}
	d = min(d, r.Max)
	return d/2 + rand.N(d/2+1)
}

// deadLetter appends the batch, the status and the aggregator's answer as
// one JSON line to <queue dir>/<output>/deadletter.ndjson.
func (o *output) deadLetter(events []exporters.Event, xe *exporters.Error) error {
	b := []byte(`{"time":"`)
	b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","output":`...)
	b = jsonstr.Append(b, o.name)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(xe.Status), 10)
	b = append(b, `,"error":`...)
	b = jsonstr.Append(b, xe.Error())
	b = append(b, `,"response":`...)
	b = jsonstr.Append(b, string(xe.Body))
	b = append(b, `,"records":[`...)
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e.JSON...)
	}
	b = append(b, "]}\n"...)
	f, err := os.OpenFile(filepath.Join(o.dir, "deadletter.ndjson"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil && o.opts.Queue.Fsync != queue.FsyncNever {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
