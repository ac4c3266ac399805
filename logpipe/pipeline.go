package logpipe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/exporters"
	"github.com/flexgw/flexgw/ir/irlog"
	"github.com/flexgw/flexgw/logpipe/queue"
)

// Options are what the agent, not the config file, decides.
type Options struct {
	GatewayID string
	Hostname  string
	// QueueDir holds one queue directory per output (default
	// /var/lib/flexgw/queue).
	QueueDir string
	Logger   *slog.Logger
	// Labels are added to every record that lacks them.
	Labels map[string]string
	Redact RedactOptions
	Sample SampleOptions
	Batch  BatchOptions
	Queue  QueueOptions
	Retry  RetryOptions
	// Buffer is the in-memory stage between Write and the queues, in
	// records (default 16384). When full, Write drops and counts.
	Buffer int
	// Exporter settings (an HTTP client for tests; Hostname is filled in).
	Exporter exporters.Settings
	// Direct makes the pipeline queueless: outputs open no durable queue
	// and start no sender, and records are delivered only by
	// DeliverMsgpack, which returns once the aggregator confirmed them.
	// For a caller that keeps the records itself until then (the Fluent
	// Bit plugin with Fluent Bit's filesystem storage): a second durable
	// copy would only cost a write and a read per record.
	Direct bool
}

// BatchOptions bound one export request.
type BatchOptions struct {
	MaxRecords    int           // default 2000
	MaxBytes      int           // default 4 MiB of records
	FlushInterval time.Duration // default 1s: how long a partial batch waits
}

// QueueOptions configure every output's durable queue.
type QueueOptions struct {
	MaxBytes int64 // default 1 GiB per output
	Fsync    queue.Fsync
	// RejectWhenFull makes ingestion fail with queue.ErrFull instead of
	// dropping the oldest records (the Fluent Bit plugin sets it).
	RejectWhenFull bool
}

// RetryOptions shape the backoff.
type RetryOptions struct {
	Min           time.Duration // default 250ms
	Max           time.Duration // default 30s
	MaxRetryAfter time.Duration // cap on an aggregator's Retry-After, default 5m
	// AnsweringMax caps the wait while the aggregator answers (5xx, 429
	// without Retry-After): it is up, so it is retried soon. Default 5s.
	AnsweringMax time.Duration
	// ProbeInterval is how often an unreachable aggregator is probed
	// during a longer wait; the retry starts once it accepts connections.
	// Default 1s.
	ProbeInterval time.Duration
	// Window bounds how long DeliverMsgpack keeps retrying a chunk before
	// it returns ErrPending (the caller retries the chunk later).
	// Default 5s: Fluent Bit waits for a flush in progress before it
	// stops (measured: SIGTERM took 22 s with 30 s), and 5 s is its
	// default grace period.
	Window time.Duration
}

// DefaultQueueDir is where queues live unless Options.QueueDir says.
const DefaultQueueDir = "/var/lib/flexgw/queue"

func (o *Options) defaults() {
	if o.QueueDir == "" {
		o.QueueDir = DefaultQueueDir
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = o.Logger.With("component", "logpipe")
	if o.Buffer <= 0 {
		o.Buffer = 16384
	}
	if o.Batch.MaxRecords <= 0 {
		o.Batch.MaxRecords = 2000
	}
	if o.Batch.MaxBytes <= 0 {
		o.Batch.MaxBytes = 4 << 20
	}
	if o.Batch.FlushInterval <= 0 {
		o.Batch.FlushInterval = time.Second
	}
	if o.Retry.Min <= 0 {
		o.Retry.Min = 250 * time.Millisecond
	}
	if o.Retry.Max <= 0 {
		o.Retry.Max = 30 * time.Second
	}
	if o.Retry.MaxRetryAfter <= 0 {
		o.Retry.MaxRetryAfter = 5 * time.Minute
	}
	if o.Retry.AnsweringMax <= 0 {
		o.Retry.AnsweringMax = 5 * time.Second
	}
	if o.Retry.ProbeInterval <= 0 {
		o.Retry.ProbeInterval = time.Second
	}
	if o.Retry.Window <= 0 {
		o.Retry.Window = 5 * time.Second
	}
	if o.Exporter.Hostname == "" {
		o.Exporter.Hostname = o.Hostname
	}
}

// routing is the current config's view, swapped atomically by Apply.
type routing struct {
	access  []*output
	runtime []*output
	level   slog.Level
	all     []*output
}

// Pipeline is logpipe for one gateway process. Write is the access-log
// sink of the built-in data plane; Ingest* take Fluent Bit chunks and log
// lines; RuntimeHandler takes the agent's own logs.
type Pipeline struct {
	opts   Options
	redact *redactor
	enrich *enricher

	mu      sync.Mutex // guards outputs, started, closed (not the hot path)
	outputs map[string]*output
	started bool
	closed  bool
	route   atomic.Pointer[routing]

	// in is Write's in-memory stage. It holds pointers to pooled
	// copies, not records: a channel of 16,384 records by value is
	// megabytes of pointer slots the garbage collector scans on every
	// cycle, even while it is empty (most of the plugin's GC time).
	in       chan *accesslog.Record
	rt       chan Entry
	sampled  atomic.Int64
	memDrops atomic.Int64
	stopIn   chan struct{}
	inDone   chan struct{}

	// Direct delivery (Options.Direct): ctx ends in-flight deliveries at
	// Close; partial remembers what was confirmed of chunks that were not
	// wholly delivered.
	directCtx    context.Context
	directCancel context.CancelFunc
	partial      partials
}

var _ accesslog.Sink = (*Pipeline)(nil)

// New validates l, opens every output's queue (resuming what a previous
// run left) and returns a pipeline that does nothing until Start.
func New(l *irlog.Logging, opts Options) (*Pipeline, error) {
	if err := Validate(l); err != nil {
		return nil, err
	}
	opts.defaults()
	p := &Pipeline{
		opts:    opts,
		redact:  newRedactor(opts.Redact),
		enrich:  newEnricher(opts.GatewayID, opts.Hostname, opts.Labels),
		outputs: map[string]*output{},
		in:      make(chan *accesslog.Record, opts.Buffer),
		rt:      make(chan Entry, 1024),
		stopIn:  make(chan struct{}),
		inDone:  make(chan struct{}),
	}
	p.route.Store(&routing{level: slog.LevelInfo})
	p.directCtx, p.directCancel = context.WithCancel(context.Background())
	p.partial.init()
	if err := p.apply(l); err != nil {
		p.directCancel()
		p.closeQueues()
		return nil, err
	}
	return p, nil
}

// Start launches the ingest stage and one sender per output. It returns
// at once; Close stops everything.
func (p *Pipeline) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("logpipe: start after close")
	}
	if p.started {
		return nil
	}
	p.started = true
	for _, o := range p.outputs {
		o.start()
	}
	go p.ingestLoop()
	p.opts.Logger.Info("log pipeline started", "outputs", len(p.outputs), "queue_dir", p.opts.QueueDir)
	return nil
}

// Apply reconfigures outputs on reload. Unchanged outputs keep running;
// changed ones get a new exporter over the same queue; removed ones stop
// (their queue stays on disk and resumes if the output comes back).
// Nothing queued is lost.
func (p *Pipeline) Apply(l *irlog.Logging) error {
	if err := Validate(l); err != nil {
		return err
	}
	return p.apply(l)
}

func (p *Pipeline) apply(l *irlog.Logging) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("logpipe: apply after close")
	}
	want := map[string]irlog.LogOutput{}
	if l != nil {
		for _, o := range l.Outputs {
			want[o.Name] = o
		}
	}
	// Build every exporter first so a failure changes nothing.
	exps := map[string]exporters.Exporter{}
	for name, o := range want {
		if cur := p.outputs[name]; cur != nil && sameOutput(cur.cfg, o) {
			continue
		}
		exp, err := NewExporter(o, p.opts.Exporter)
		if err != nil {
			return fmt.Errorf("logging output %q: %w", name, err)
		}
		exps[name] = exp
	}
	var opened []*output
	for name, exp := range exps {
		if cur := p.outputs[name]; cur != nil {
			cur.exp.Store(exp)
			cur.typ.Store(want[name].Type)
			cur.cfg = want[name]
			continue
		}
		o, err := openOutput(want[name], exp, &p.opts)
		if err != nil {
			for _, o := range opened {
				o.closeQueue()
			}
			return err
		}
		opened = append(opened, o)
	}
	for _, o := range opened {
		p.outputs[o.name] = o
		if p.started {
			o.start()
		}
	}
	for name, o := range p.outputs {
		if _, ok := want[name]; !ok {
			delete(p.outputs, name)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = o.stop(ctx)
				o.closeQueue()
			}()
		}
	}
	access, runtime := routes(l)
	r := &routing{}
	if l != nil {
		r.level, _ = ParseLevel(l.RuntimeLogLevel)
	}
	for _, name := range slices.Sorted(maps.Keys(p.outputs)) {
		o := p.outputs[name]
		r.all = append(r.all, o)
		if access[name] {
			r.access = append(r.access, o)
		}
		if runtime[name] {
			r.runtime = append(r.runtime, o)
		}
	}
	p.route.Store(r)
	return nil
}

func sameOutput(a, b irlog.LogOutput) bool {
	return a.Name == b.Name && a.Type == b.Type && maps.Equal(a.Parameters, b.Parameters)
}

// Write implements accesslog.Sink. It copies rec and never blocks: when
// the in-memory stage is full the record is dropped and counted.
func (p *Pipeline) Write(rec *accesslog.Record) {
	if len(p.route.Load().access) == 0 {
		return
	}
	r := recordPool.Get().(*accesslog.Record)
	*r = *rec
	select {
	case p.in <- r:
	default:
		recordPool.Put(r)
		p.memDrops.Add(1)
		for _, o := range p.route.Load().access {
			o.memDropped.Add(1)
		}
	}
}

// ingestLoop turns Written records into queue items, a group at a time.
func (p *Pipeline) ingestLoop() {
	defer close(p.inDone)
	const group = 512
	var recs []*accesslog.Record
	var s scratch
	for {
		var rt *Entry
		select {
		case r := <-p.in:
			recs = append(recs[:0], r)
		case e := <-p.rt:
			rt = &e
		case <-p.stopIn:
			// Drain what was accepted before Close.
			for {
				select {
				case r := <-p.in:
					p.encodeRecords(&s, []*accesslog.Record{r})
					_ = p.enqueue(p.route.Load().access, &s)
				case e := <-p.rt:
					p.enqueueRuntime(&e)
				default:
					return
				}
			}
		}
		if rt != nil {
			p.enqueueRuntime(rt)
			continue
		}
	more:
		for len(recs) < group {
			select {
			case r := <-p.in:
				recs = append(recs, r)
			default:
				break more
			}
		}
		p.encodeRecords(&s, recs)
		_ = p.enqueue(p.route.Load().access, &s)
	}
}

// recordPool holds the copies Write hands to the ingest stage.
var recordPool = sync.Pool{New: func() any { return new(accesslog.Record) }}

// encodeRecords encodes recs into s and returns them to the pool.
func (p *Pipeline) encodeRecords(s *scratch, recs []*accesslog.Record) {
	s.reset()
	for i, r := range recs {
		e := FromRecord(r)
		p.processInto(s, &e, nil)
		*r = accesslog.Record{}
		recordPool.Put(r)
		recs[i] = nil
	}
}

// process runs enrich, redact and sample on one entry and returns its
// queue record; nil means sampled out.
func (p *Pipeline) process(e *Entry) []byte {
	if e.Kind == exporters.Access && !p.opts.Sample.keep(e) {
		p.sampled.Add(1)
		return nil
	}
	p.enrich.apply(e)
	p.redact.apply(e)
	return encodeItem(make([]byte, 0, 768), e)
}

// scratch holds what one synchronous ingest call (a Fluent Bit chunk, a
// block of lines) builds: its records as queue frames back to back in
// one buffer, written to the queue as they are, and the redaction rules
// of the last record's fields. Pooled, so a chunk allocates nothing per
// record.
type scratch struct {
	buf   []byte // frames (queue.BeginFrame, queue.EndFrame)
	n     int    // records in buf
	rules []keyRule
	evs   []exporters.Event // DeliverMsgpack's events, aliasing buf
	// unsummed: the frames are never written to a queue (DeliverMsgpack),
	// so their checksum is left out.
	unsummed bool
}

// endFrame finishes the frame started at start in s.buf.
func (s *scratch) endFrame(start int) {
	if s.unsummed {
		binary.LittleEndian.PutUint32(s.buf[start:], uint32(len(s.buf)-start-queue.FrameOverhead))
		return
	}
	queue.EndFrame(s.buf, start)
}

func (s *scratch) reset() { s.buf, s.n = s.buf[:0], 0 }

var scratchPool = exporters.NewFreeList(4, func() *scratch { return new(scratch) })

func getScratch() *scratch {
	s := scratchPool.Get()
	s.reset()
	s.unsummed = false
	return s
}

func putScratch(s *scratch) {
	if cap(s.buf) > 16<<20 {
		return // one huge chunk: do not pin its buffer
	}
	scratchPool.Put(s)
}

// frameReserve is what decodeMsgpackInto leaves before each record for
// processInto: the queue frame's header and the record's.
const frameReserve = queue.FrameOverhead + itemHeader

// processInto runs sample, enrich and redact and appends the record's
// queue frame to s.buf; false means sampled out. With a span the record
// is already in s.buf, written by decodeMsgpackInto, and is finished in
// place.
func (p *Pipeline) processInto(s *scratch, e *Entry, sp *span) bool {
	if e.Kind == exporters.Access && !p.opts.Sample.keep(e) {
		p.sampled.Add(1)
		if sp != nil {
			s.buf = s.buf[:sp.start]
		}
		return false
	}
	p.enrich.apply(e)
	p.redact.applyCached(e, &s.rules)
	if sp == nil {
		start := len(s.buf)
		s.buf = appendItem(queue.BeginFrame(s.buf), e, nil)
		s.endFrame(start)
	} else {
		item := *sp
		item.start += queue.FrameOverhead
		s.buf = appendItem(s.buf, e, &item)
		s.endFrame(sp.start)
	}
	s.n++
	return true
}

// enqueue appends the frames of s to each output's queue.
func (p *Pipeline) enqueue(outs []*output, s *scratch) error {
	if s.n == 0 {
		return nil
	}
	var errs []error
	for _, o := range outs {
		if o.q == nil {
			errs = append(errs, fmt.Errorf("output %q: %w", o.name, errNoQueue))
			continue
		}
		if err := o.q.AppendFrames(s.buf); err != nil {
			o.memDropped.Add(int64(s.n))
			o.setErr(err)
			errs = append(errs, fmt.Errorf("output %q: %w", o.name, err))
			continue
		}
		o.in.Add(int64(s.n))
	}
	return errors.Join(errs...)
}

func (p *Pipeline) enqueueRuntime(e *Entry) {
	r := p.route.Load()
	if len(r.runtime) == 0 {
		return
	}
	p.redact.apply(e)
	s := scratch{buf: appendItem(queue.BeginFrame(nil), e, nil), n: 1}
	queue.EndFrame(s.buf, 0)
	_ = p.enqueue(r.runtime, &s)
}

// IngestJSONLines takes newline-separated JSON access-log lines (a file
// tail, or the plugin's records) synchronously: when it returns nil every
// kept line is in every access output's durable queue. Lines that are not
// JSON objects are counted and skipped (returned as the count).
func (p *Pipeline) IngestJSONLines(data []byte) (bad int, err error) {
	s := getScratch()
	defer putScratch(s)
	if want := len(data) + len(data)/3 + 4096; cap(s.buf) < want {
		s.buf = make([]byte, 0, want)
	}
	for len(data) > 0 {
		line := data
		if i := indexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(trimSpace(line)) == 0 {
			continue
		}
		e, derr := DecodeJSON(line)
		if derr != nil {
			bad++
			continue
		}
		p.processInto(s, &e, nil)
	}
	return bad, p.enqueueAccess(s)
}

// IngestMsgpack takes one Fluent Bit chunk synchronously (see
// DecodeMsgpack). It returns queue.ErrFull (wrapped) when a queue refused
// the records, so the plugin can ask Fluent Bit to retry the chunk.
func (p *Pipeline) IngestMsgpack(data []byte) error {
	s := getScratch()
	defer putScratch(s)
	// A record's JSON is about its msgpack size plus the queue header and
	// enrichment: size the buffer once rather than grow (copy) it.
	if want := len(data) + len(data)/3 + 4096; cap(s.buf) < want {
		s.buf = make([]byte, 0, want)
	}
	err := decodeMsgpackInto(data, &s.buf, frameReserve, func(e *Entry, sp *span) error {
		p.processInto(s, e, sp)
		return nil
	})
	if err != nil {
		return err
	}
	return p.enqueueAccess(s)
}

func (p *Pipeline) enqueueAccess(s *scratch) error {
	return p.enqueue(p.route.Load().access, s)
}

// Stats returns every output's counters, sorted by name.
func (p *Pipeline) Stats() []ExporterStats {
	r := p.route.Load()
	out := make([]ExporterStats, 0, len(r.all))
	for _, o := range r.all {
		out = append(out, o.stats())
	}
	return out
}

// Close stops ingestion, lets each sender drain its queue until ctx ends,
// and closes the queues. Whatever is still queued is sent after restart.
func (p *Pipeline) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	started := p.started
	outs := slices.Collect(maps.Values(p.outputs))
	p.mu.Unlock()
	p.directCancel()
	if started {
		close(p.stopIn)
		<-p.inDone
	}
	var wg sync.WaitGroup
	errs := make([]error, len(outs))
	for i, o := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := o.stop(ctx); err != nil {
				errs[i] = fmt.Errorf("output %q: %d records left queued: %w", o.name, o.stats().QueueDepth, err)
			}
		}()
	}
	wg.Wait()
	p.closeQueues()
	return errors.Join(errs...)
}

func (p *Pipeline) closeQueues() {
	for _, o := range p.outputs {
		o.closeQueue()
	}
}

// DeadLetterPath returns the dead-letter file of an output.
func (p *Pipeline) DeadLetterPath(output string) string {
	return filepath.Join(p.opts.QueueDir, safeName(output), "deadletter.ndjson")
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
