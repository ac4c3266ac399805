package logpipe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/flexgw/flexgw/exporters"
	"github.com/flexgw/flexgw/logpipe/queue"
)

// ErrPending is returned by DeliverMsgpack when some records of the chunk
// were not confirmed within Options.Retry.Window (or before Close). What
// was confirmed is remembered: handed the same chunk again, DeliverMsgpack
// sends only the rest, so retrying the chunk duplicates nothing.
var ErrPending = errors.New("logpipe: records of the chunk still pending delivery")

// errNoQueue is what the queued entry points return on a Direct pipeline.
var errNoQueue = errors.New("no durable queue (direct delivery: records are taken by DeliverMsgpack only)")

// DeliverMsgpack delivers one Fluent Bit chunk (see DecodeMsgpack) to
// every access output of a Direct pipeline and returns nil once the
// aggregators confirmed every record (or refused some for good: those are
// dead-lettered). It retries failed requests on its own, each request
// apart, with the pipeline's back-off, for up to Options.Retry.Window;
// then it returns ErrPending and the caller keeps the chunk and hands it
// over again later. A chunk that can never decode returns an error
// wrapping ErrMsgpack. It may be called concurrently.
//
// Nothing is written to disk: the chunk's owner (Fluent Bit, which keeps
// a chunk in its storage until the output returns FLB_OK) is the durable
// copy. A crash between a confirmed request and the return resends that
// request's records (at least once), as a crash of the queued pipeline
// resends its batch in flight.
func (p *Pipeline) DeliverMsgpack(data []byte) error {
	s := getScratch()
	defer putScratch(s)
	s.unsummed = true
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
	if s.n == 0 {
		return nil
	}
	// The frames hold each record's queue item; the events alias them.
	evs := s.evs[:0]
	for off := 0; off+queue.FrameOverhead <= len(s.buf); {
		n := int(binary.LittleEndian.Uint32(s.buf[off:]))
		item := s.buf[off+queue.FrameOverhead : off+queue.FrameOverhead+n]
		if ev, ok := decodeItem(item); ok {
			evs = append(evs, ev)
		}
		off += queue.FrameOverhead + n
	}
	defer func() {
		clear(evs)
		s.evs = evs[:0]
	}()
	var errs []error
	var done []*output
	outs := p.route.Load().access
	for _, o := range outs {
		if err := p.deliver(o, data, evs); err != nil {
			errs = append(errs, fmt.Errorf("output %q: %w", o.name, err))
		} else {
			done = append(done, o)
		}
	}
	if len(errs) > 0 && len(done) > 0 {
		// The chunk comes back for the outputs still pending: the
		// others must not send it again.
		all := make([]bool, len(evs))
		for i := range all {
			all[i] = true
		}
		for _, o := range done {
			p.partial.keep(partialKey{}, o, data, all)
		}
	}
	return errors.Join(errs...)
}

// deliver sends evs (the records of chunk) to o until every one is
// settled or the window ends.
func (p *Pipeline) deliver(o *output, chunk []byte, evs []exporters.Event) error {
	ctx := p.directCtx
	var key partialKey
	var settled []bool
	if !p.opts.Sample.active() {
		key, settled = p.partial.take(o, chunk, len(evs))
	}
	b := &batch{events: evs, settled: settled, left: len(evs)}
	if settled == nil {
		b.settled = make([]bool, len(evs))
		o.in.Add(int64(len(evs)))
	} else {
		b.left = 0
		for _, done := range settled {
			if !done {
				b.left++
			}
		}
	}
	if b.left == 0 {
		return nil // delivered before the chunk came back for another output
	}
	end := time.Now().Add(o.opts.Retry.Window)
	attempt := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	wait := func(d time.Duration, _ bool) bool {
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		}
	}
	for {
		r := o.send(ctx, b)
		if b.left == 0 {
			return nil
		}
		d := time.Second // the dead-letter file could not be written
		if r.failed > 0 || r.deadErr == nil {
			d = o.retryDelay(r, &attempt)
		}
		if ctx.Err() != nil || time.Now().Add(d).After(end) {
			p.partial.keep(key, o, chunk, b.settled)
			o.log.Warn("export failed; the chunk goes back to Fluent Bit for a later retry", "pending", b.left, "of", len(evs), "err", r.err)
			return fmt.Errorf("%w: %d of %d records", ErrPending, b.left, len(evs))
		}
		o.log.Warn("export failed; will retry", "records", r.failed, "pending", b.left, "attempt", attempt, "in", d, "err", r.err)
		if !o.retryWait(ctx, d, r.unreachable && r.retryAfter == 0, wait) {
			p.partial.keep(key, o, chunk, b.settled)
			return fmt.Errorf("%w: %d of %d records (closing)", ErrPending, b.left, len(evs))
		}
	}
}

// partials remembers, per output and chunk, which records of a chunk that
// went back to its owner undelivered were confirmed already. Chunks are
// told apart by a 64-bit hash of their bytes and their record count.
// At most maxPartials are kept: forgetting one costs duplicates when the
// chunk comes back, never a loss.
type partials struct {
	mu    sync.Mutex
	seed  maphash.Seed
	m     map[partialKey][]bool
	order []partialKey
}

type partialKey struct {
	o    *output
	sum  uint64
	size int
	n    int
}

const maxPartials = 256

func (ps *partials) init() {
	ps.seed = maphash.MakeSeed()
	ps.m = map[partialKey][]bool{}
}

// take returns the chunk's key and, when it was seen before, what of it
// was settled (removing it: the caller owns it now).
func (ps *partials) take(o *output, chunk []byte, n int) (partialKey, []bool) {
	ps.mu.Lock()
	empty := len(ps.m) == 0
	ps.mu.Unlock()
	if empty {
		return partialKey{}, nil // nothing to look up: hash only on failure
	}
	k := ps.key(o, chunk, n)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	settled, ok := ps.m[k]
	if ok {
		delete(ps.m, k)
	}
	return k, settled
}

func (ps *partials) key(o *output, chunk []byte, n int) partialKey {
	return partialKey{o: o, sum: maphash.Bytes(ps.seed, chunk), size: len(chunk), n: n}
}

// keep remembers settled for the chunk (k is zero when take did not hash).
// With sampling on nothing is kept: a chunk's records are then not the
// same ones each time it is decoded, so positions would name other
// records.
func (ps *partials) keep(k partialKey, o *output, chunk []byte, settled []bool) {
	if o.opts.Sample.active() {
		return
	}
	if k.o == nil {
		k = ps.key(o, chunk, len(settled))
	}
	any := false
	for _, s := range settled {
		any = any || s
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if !any {
		delete(ps.m, k)
		return
	}
	if _, ok := ps.m[k]; !ok {
		ps.order = append(ps.order, k)
	}
	ps.m[k] = settled
	for len(ps.m) > maxPartials && len(ps.order) > 0 {
		delete(ps.m, ps.order[0])
		ps.order = ps.order[1:]
	}
	if len(ps.order) > 4*maxPartials {
		// Keys taken since are still listed: keep only live ones.
		live := ps.order[:0]
		for _, k := range ps.order {
			if _, ok := ps.m[k]; ok {
				live = append(live, k)
			}
		}
		ps.order = live
	}
}
