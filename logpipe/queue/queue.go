// Package queue is logpipe's durable per-exporter write-ahead queue: items
// are appended to segment files as length+CRC32C framed records, read back
// in order by one consumer, and removed only when the consumer acknowledges
// them (after the aggregator confirmed). A restart resumes from the last
// acknowledged position; a torn tail left by a crash is truncated. The
// total size is capped: past the cap the oldest segment is dropped and
// every record in it that was not yet acknowledged is counted as dropped
// (or, with RejectWhenFull, Append refuses new items instead).
package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Fsync says when appended data is forced to stable storage. Data written
// is safe against a process crash as soon as Append returns (it is in the
// kernel); fsync adds safety against a machine crash.
type Fsync int

// Fsync policies.
const (
	// FsyncInterval syncs dirty segments every Options.FsyncInterval.
	FsyncInterval Fsync = iota
	// FsyncAlways syncs before every Append returns.
	FsyncAlways
	// FsyncNever leaves it to the kernel.
	FsyncNever
)

// ParseFsync reads "always", "interval" or "never".
func ParseFsync(s string) (Fsync, error) {
	switch strings.ToLower(s) {
	case "", "interval":
		return FsyncInterval, nil
	case "always":
		return FsyncAlways, nil
	case "never":
		return FsyncNever, nil
	}
	return 0, fmt.Errorf("fsync policy %q: use always, interval or never", s)
}

// Options configure a queue.
type Options struct {
	Dir string
	// MaxBytes caps the bytes on disk (default 1 GiB).
	MaxBytes int64
	// SegmentBytes is the size at which a new segment starts (default
	// min(16 MiB, MaxBytes/8)).
	SegmentBytes  int64
	Fsync         Fsync
	FsyncInterval time.Duration // default 1s
	// RejectWhenFull makes Append fail with ErrFull instead of dropping the
	// oldest records (the Fluent Bit plugin uses it: Fluent Bit then keeps
	// the chunk and retries).
	RejectWhenFull bool
}

// ErrFull is returned by Append when RejectWhenFull is set and the items
// would not fit.
var ErrFull = errors.New("queue full")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("queue closed")

// ErrTooLarge is returned for a single item bigger than a segment.
var ErrTooLarge = errors.New("item larger than a queue segment")

// FrameOverhead is what the queue adds to each item on disk (Stats.Bytes
// counts it).
const FrameOverhead = frameHeader

const (
	frameHeader = 8 // uint32 length, uint32 CRC32C, little endian
	segSuffix   = ".wal"
	cursorFile  = "cursor"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type segment struct {
	id    uint64
	size  int64
	count int
}

// Cursor is a position in the queue: the segment, the byte offset in it,
// and how many records of the segment precede it.
type Cursor struct {
	Seg uint64
	Off int64
	N   int
}

// Stats is a snapshot of the queue's counters.
type Stats struct {
	Depth   int   // records not yet acknowledged
	Bytes   int64 // bytes of unacknowledged records (with framing)
	Dropped int64 // records dropped by the size cap since Open
}

// Queue is safe for concurrent Append; Read and Ack belong to one consumer.
type Queue struct {
	opts Options
	lock *os.File

	mu      sync.Mutex
	segs    []segment // oldest first; the last is the write segment
	w       *os.File
	dirty   bool
	head    Cursor // first unacknowledged record
	cur     *os.File
	cf      *os.File // the cursor file, open once written
	seq     uint64   // sequence number of the last cursor slot written
	wbuf    []byte   // Append's framing buffer, reused
	rbuf    []byte   // Read's buffer, reused (see Read)
	rused   int      // bytes of rbuf handed out by the current Read
	items   [][]byte // Read's result, reused
	dropped int64
	closed  bool
	notify  chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

func segName(dir string, id uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", id, segSuffix))
}

// Open opens or creates the queue in opts.Dir, validating every segment.
func Open(opts Options) (*Queue, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 1 << 30
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = min(16<<20, opts.MaxBytes/8)
	}
	if opts.SegmentBytes < 4096 {
		opts.SegmentBytes = 4096
	}
	if opts.FsyncInterval <= 0 {
		opts.FsyncInterval = time.Second
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("queue dir %s: %w", opts.Dir, err)
	}
	// One writer per directory: two queues over the same segments would
	// corrupt each other, so a second Open (any process) fails.
	lock, err := os.OpenFile(filepath.Join(opts.Dir, "lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("queue dir %s: %w", opts.Dir, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("queue dir %s is in use by another queue: %w", opts.Dir, err)
	}
	q := &Queue{opts: opts, lock: lock, notify: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			_ = lock.Close()
		}
	}()
	names, err := filepath.Glob(filepath.Join(opts.Dir, "*"+segSuffix))
	if err != nil {
		return nil, err
	}
	var ids []uint64
	for _, n := range names {
		id, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(n), segSuffix), 10, 64)
		if err == nil {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		s, err := scan(segName(opts.Dir, id))
		if err != nil {
			return nil, err
		}
		s.id = id
		q.segs = append(q.segs, s)
	}
	if len(q.segs) == 0 {
		q.segs = []segment{{id: 1}}
	}
	q.head = Cursor{Seg: q.segs[0].id}
	if c, seq, ok := readCursor(filepath.Join(opts.Dir, cursorFile)); ok {
		q.seq = seq
		for _, s := range q.segs {
			if s.id == c.Seg && c.Off <= s.size && c.N <= s.count {
				q.head = c
			}
		}
		// Segments wholly before the cursor were acknowledged: the crash
		// came between the cursor write and their removal.
		for len(q.segs) > 1 && q.segs[0].id < q.head.Seg {
			_ = os.Remove(segName(opts.Dir, q.segs[0].id))
			q.segs = q.segs[1:]
		}
	}
	last := q.segs[len(q.segs)-1]
	q.w, err = os.OpenFile(segName(opts.Dir, last.id), os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("queue segment: %w", err)
	}
	if err := q.w.Truncate(last.size); err != nil { // drop a torn tail
		return nil, fmt.Errorf("queue segment: %w", err)
	}
	if _, err := q.w.Seek(last.size, io.SeekStart); err != nil {
		return nil, err
	}
	go q.syncLoop()
	ok = true
	return q, nil
}

// scan validates a segment and returns its valid size and record count;
// it stops at the first torn or corrupt frame.
func scan(path string) (segment, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return segment{}, fmt.Errorf("queue segment: %w", err)
	}
	var s segment
	off := 0
	for len(data)-off >= frameHeader {
		n := int(binary.LittleEndian.Uint32(data[off:]))
		sum := binary.LittleEndian.Uint32(data[off+4:])
		if n > len(data)-off-frameHeader || crc32.Checksum(data[off+frameHeader:off+frameHeader+n], castagnoli) != sum {
			break
		}
		off += frameHeader + n
		s.count++
	}
	s.size = int64(off)
	return s, nil
}

// The cursor file holds two slots written in turn (slot = seq % 2), each
// with a sequence number and a CRC; the valid slot with the higher
// sequence wins. A torn write spoils only the slot being written, so the
// previous position survives (the batch since is sent again: a duplicate,
// never a loss), and no file is created or renamed per acknowledgement,
// which costs an inode and a directory update each time on ext4.
const (
	slotSize   = 40 // seg, off, n, seq (uint64 each), CRC32C, 4 spare
	legacySize = 28 // an older release's single record: seg, off, n, CRC32C
)

func encodeSlot(c Cursor, seq uint64) []byte {
	b := make([]byte, slotSize)
	binary.LittleEndian.PutUint64(b, c.Seg)
	binary.LittleEndian.PutUint64(b[8:], uint64(c.Off))
	binary.LittleEndian.PutUint64(b[16:], uint64(c.N))
	binary.LittleEndian.PutUint64(b[24:], seq)
	binary.LittleEndian.PutUint32(b[32:], crc32.Checksum(b[:32], castagnoli))
	return b
}

func decodeSlot(b []byte) (Cursor, uint64, bool) {
	if len(b) < slotSize || crc32.Checksum(b[:32], castagnoli) != binary.LittleEndian.Uint32(b[32:]) {
		return Cursor{}, 0, false
	}
	return Cursor{
		Seg: binary.LittleEndian.Uint64(b),
		Off: int64(binary.LittleEndian.Uint64(b[8:])),
		N:   int(binary.LittleEndian.Uint64(b[16:])),
	}, binary.LittleEndian.Uint64(b[24:]), true
}

// readCursor returns the last persisted position and its sequence number.
func readCursor(path string) (Cursor, uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Cursor{}, 0, false
	}
	if len(b) == legacySize {
		if crc32.Checksum(b[:24], castagnoli) != binary.LittleEndian.Uint32(b[24:]) {
			return Cursor{}, 0, false
		}
		return Cursor{
			Seg: binary.LittleEndian.Uint64(b),
			Off: int64(binary.LittleEndian.Uint64(b[8:])),
			N:   int(binary.LittleEndian.Uint64(b[16:])),
		}, 0, true
	}
	var best Cursor
	var bestSeq uint64
	found := false
	for off := 0; off+slotSize <= len(b) && off < 2*slotSize; off += slotSize {
		if c, seq, ok := decodeSlot(b[off:]); ok && (!found || seq > bestSeq) {
			best, bestSeq, found = c, seq, true
		}
	}
	return best, bestSeq, found
}

// Notify returns a channel that receives after appends.
func (q *Queue) Notify() <-chan struct{} { return q.notify }

// Append writes items as one group, in order. When it returns nil the
// items survive a process crash.
func (q *Queue) Append(items ...[]byte) error {
	size := int64(0)
	for _, it := range items {
		if int64(len(it)+frameHeader) > q.opts.SegmentBytes {
			return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(it))
		}
		size += int64(len(it) + frameHeader)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	// Only unacknowledged bytes count: the head segment's delivered part
	// goes away when the segment does.
	if q.opts.RejectWhenFull && q.bytesLocked()-q.head.Off+size > q.opts.MaxBytes {
		return ErrFull
	}
	buf := q.wbuf[:0]
	defer func() {
		if cap(buf) <= 2<<20 {
			q.wbuf = buf[:0] // keep it for the next Append
		}
	}()
	for _, it := range items {
		last := &q.segs[len(q.segs)-1]
		if last.size > 0 && last.size+int64(len(buf))+int64(len(it)+frameHeader) > q.opts.SegmentBytes {
			if err := q.flushLocked(buf); err != nil {
				return err
			}
			buf = buf[:0]
			if err := q.rollLocked(); err != nil {
				return err
			}
			last = &q.segs[len(q.segs)-1]
		}
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(it)))
		buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(it, castagnoli))
		buf = append(buf, it...)
		last.count++
		if len(buf) >= 1<<20 {
			if err := q.flushLocked(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	if err := q.flushLocked(buf); err != nil {
		return err
	}
	return q.appendedLocked()
}

// BeginFrame appends room for a frame header to b: the caller appends
// the item after it and calls EndFrame, and AppendFrames takes a buffer
// of such frames without copying them again.
func BeginFrame(b []byte) []byte { return append(b, make([]byte, frameHeader)...) }

// EndFrame fills the header of the frame that BeginFrame started at
// start in b (the item is b[start+FrameOverhead:]).
func EndFrame(b []byte, start int) {
	item := b[start+frameHeader:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(item)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(item, castagnoli))
}

// AppendFrames is Append for items already framed by BeginFrame and
// EndFrame, back to back in frames: they are written as they are.
func (q *Queue) AppendFrames(frames []byte) error {
	size := int64(len(frames))
	for off := 0; off < len(frames); {
		if len(frames)-off < frameHeader {
			return fmt.Errorf("queue: torn frame at offset %d", off)
		}
		n := int(binary.LittleEndian.Uint32(frames[off:]))
		if n > len(frames)-off-frameHeader {
			return fmt.Errorf("queue: torn frame at offset %d", off)
		}
		if int64(n+frameHeader) > q.opts.SegmentBytes {
			return fmt.Errorf("%w: %d bytes", ErrTooLarge, n)
		}
		off += frameHeader + n
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	if q.opts.RejectWhenFull && q.bytesLocked()-q.head.Off+size > q.opts.MaxBytes {
		return ErrFull
	}
	// Write runs of whole frames that fit the write segment, rolling to a
	// new segment between them.
	for len(frames) > 0 {
		last := &q.segs[len(q.segs)-1]
		run, count := 0, 0
		for run < len(frames) {
			n := frameHeader + int(binary.LittleEndian.Uint32(frames[run:]))
			if (last.size > 0 || run > 0) && last.size+int64(run+n) > q.opts.SegmentBytes {
				break
			}
			run += n
			count++
		}
		if run == 0 {
			if err := q.rollLocked(); err != nil {
				return err
			}
			continue
		}
		last.count += count
		if err := q.flushLocked(frames[:run]); err != nil {
			return err
		}
		frames = frames[run:]
	}
	return q.appendedLocked()
}

// appendedLocked finishes an append: fsync per policy, the size cap, and
// the consumer's wake-up.
func (q *Queue) appendedLocked() error {
	if q.opts.Fsync == FsyncAlways {
		if err := q.w.Sync(); err != nil {
			return fmt.Errorf("queue fsync: %w", err)
		}
	} else {
		q.dirty = true
	}
	q.enforceCapLocked()
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return nil
}

// flushLocked writes framed bytes (whose records were already counted) to
// the write segment.
func (q *Queue) flushLocked(buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	last := &q.segs[len(q.segs)-1]
	if _, err := q.w.Write(buf); err != nil {
		// Leave the segment as it was: a partial frame is ignored on
		// restart and overwritten now.
		_ = q.w.Truncate(last.size)
		_, _ = q.w.Seek(last.size, io.SeekStart)
		last.count -= countFrames(buf)
		return fmt.Errorf("queue write: %w", err)
	}
	last.size += int64(len(buf))
	return nil
}

func countFrames(buf []byte) int {
	n := 0
	for off := 0; off+frameHeader <= len(buf); n++ {
		off += frameHeader + int(binary.LittleEndian.Uint32(buf[off:]))
	}
	return n
}

func (q *Queue) rollLocked() error {
	if q.opts.Fsync != FsyncNever {
		_ = q.w.Sync()
	}
	_ = q.w.Close()
	id := q.segs[len(q.segs)-1].id + 1
	f, err := os.OpenFile(segName(q.opts.Dir, id), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("queue segment: %w", err)
	}
	q.w = f
	q.segs = append(q.segs, segment{id: id})
	return nil
}

func (q *Queue) bytesLocked() int64 {
	var n int64
	for _, s := range q.segs {
		n += s.size
	}
	return n
}

// enforceCapLocked drops the oldest segments while over the cap, counting
// the unacknowledged records they held.
func (q *Queue) enforceCapLocked() {
	for len(q.segs) > 1 && q.bytesLocked() > q.opts.MaxBytes {
		s := q.segs[0]
		if q.head.Seg == s.id {
			q.dropped += int64(s.count - q.head.N)
			q.head = Cursor{Seg: q.segs[1].id}
		}
		if q.cur != nil {
			_ = q.cur.Close()
			q.cur = nil
		}
		_ = os.Remove(segName(q.opts.Dir, s.id))
		q.segs = q.segs[1:]
	}
}

// Read returns up to maxItems items (and about maxBytes) from the first
// unacknowledged record, and the cursor just past them to pass to Ack.
// Reading again without Ack returns the same items. It does not block.
//
// The items alias a buffer the queue reuses: they are valid until the
// next Read. The one consumer reads a batch, delivers it and acknowledges
// it before reading again, so nothing is copied or allocated per batch.
func (q *Queue) Read(maxItems int, maxBytes int) ([][]byte, Cursor, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, q.head, ErrClosed
	}
	q.items = q.items[:0]
	q.rused = 0
	c := q.head
	total := 0
	for si := 0; si < len(q.segs) && len(q.items) < maxItems && total < maxBytes; si++ {
		s := q.segs[si]
		if s.id < c.Seg {
			continue
		}
		if s.id > c.Seg {
			c = Cursor{Seg: s.id}
		}
		if c.Off >= s.size {
			continue
		}
		if q.cur == nil || q.cur.Name() != segName(q.opts.Dir, s.id) {
			if q.cur != nil {
				_ = q.cur.Close()
			}
			f, err := os.Open(segName(q.opts.Dir, s.id))
			if err != nil {
				q.cur = nil
				return nil, q.head, fmt.Errorf("queue read: %w", err)
			}
			q.cur = f
		}
		for c.Off < s.size && len(q.items) < maxItems && total < maxBytes {
			want := min(s.size-c.Off, int64(max(maxBytes-total, 64<<10)))
			if s.count > 0 {
				// Records are alike in size: read about what maxItems
				// needs rather than maxBytes, which is often far more.
				avg := s.size / int64(s.count)
				want = min(want, max(avg*int64(maxItems-len(q.items))+avg/2, 64<<10))
			}
			data := q.window(int(want))
			n, err := q.cur.ReadAt(data, c.Off)
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, q.head, fmt.Errorf("queue read: %w", err)
			}
			data = data[:n]
			if len(data) >= frameHeader {
				if ln := int(binary.LittleEndian.Uint32(data)); len(data)-frameHeader < ln {
					// One frame bigger than the window: read it whole.
					data = q.window(frameHeader + ln)
					if _, err := q.cur.ReadAt(data, c.Off); err != nil {
						return nil, q.head, fmt.Errorf("queue read: %w", err)
					}
				}
			}
			off := 0
			for len(q.items) < maxItems && total < maxBytes && len(data)-off >= frameHeader {
				ln := int(binary.LittleEndian.Uint32(data[off:]))
				if len(data)-off-frameHeader < ln {
					break // the rest comes with the next window
				}
				item := data[off+frameHeader : off+frameHeader+ln : off+frameHeader+ln]
				if crc32.Checksum(item, castagnoli) != binary.LittleEndian.Uint32(data[off+4:]) {
					return nil, q.head, fmt.Errorf("queue read: checksum mismatch in segment %d at offset %d", s.id, c.Off)
				}
				q.items = append(q.items, item)
				off += frameHeader + ln
				c.Off += int64(frameHeader + ln)
				c.N++
				total += ln
			}
			if off == 0 {
				// Scan validated every frame up to s.size; a frame that
				// does not fit means the file changed under us.
				return nil, q.head, fmt.Errorf("queue read: segment %d is shorter than scanned at offset %d", s.id, c.Off)
			}
			q.rused -= len(data) - off // hand the unparsed tail back to the buffer
		}
	}
	return q.items, c, nil
}

// window returns n bytes of the read buffer after what this Read already
// handed out. When the buffer is too small a bigger one replaces it; the
// items already returned keep the old one alive until the next Read.
func (q *Queue) window(n int) []byte {
	if len(q.rbuf)-q.rused < n {
		q.rbuf = make([]byte, max(n, 2*len(q.rbuf), 256<<10))
		q.rused = 0
	}
	b := q.rbuf[q.rused : q.rused+n : q.rused+n]
	q.rused += n
	return b
}

// Ack marks everything before c as delivered, persisting the position and
// removing fully delivered segments.
func (q *Queue) Ack(c Cursor) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	if c.Seg < q.head.Seg || (c.Seg == q.head.Seg && c.Off <= q.head.Off) {
		return nil // already acknowledged, or dropped meanwhile by the cap
	}
	q.head = c
	// The read cursor sits at the end of a segment that is not the write
	// segment: move it to the start of the next so that segment can go.
	for i := 0; i+1 < len(q.segs); i++ {
		if q.segs[i].id == q.head.Seg && q.head.Off >= q.segs[i].size {
			q.head = Cursor{Seg: q.segs[i+1].id}
		}
	}
	if err := q.writeCursorLocked(); err != nil {
		return err
	}
	for len(q.segs) > 1 && q.segs[0].id < q.head.Seg {
		if q.cur != nil && q.cur.Name() == segName(q.opts.Dir, q.segs[0].id) {
			_ = q.cur.Close()
			q.cur = nil
		}
		_ = os.Remove(segName(q.opts.Dir, q.segs[0].id))
		q.segs = q.segs[1:]
	}
	return nil
}

// writeCursorLocked persists q.head in the next cursor slot.
func (q *Queue) writeCursorLocked() error {
	if q.cf == nil {
		f, err := os.OpenFile(filepath.Join(q.opts.Dir, cursorFile), os.O_CREATE|os.O_RDWR, 0o640)
		if err != nil {
			return fmt.Errorf("queue cursor: %w", err)
		}
		q.cf = f
	}
	q.seq++
	if _, err := q.cf.WriteAt(encodeSlot(q.head, q.seq), int64(q.seq%2)*slotSize); err != nil {
		return fmt.Errorf("queue cursor: %w", err)
	}
	if q.opts.Fsync == FsyncAlways {
		if err := q.cf.Sync(); err != nil {
			return fmt.Errorf("queue cursor: %w", err)
		}
	}
	return nil
}

// Stats returns depth, bytes and drops.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := Stats{Bytes: q.bytesLocked() - q.head.Off, Dropped: q.dropped}
	for _, s := range q.segs {
		switch {
		case s.id == q.head.Seg:
			st.Depth += s.count - q.head.N
		case s.id > q.head.Seg:
			st.Depth += s.count
		}
	}
	return st
}

func (q *Queue) syncLoop() {
	defer close(q.done)
	if q.opts.Fsync != FsyncInterval {
		<-q.stop
		return
	}
	t := time.NewTicker(q.opts.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-t.C:
			q.mu.Lock()
			if q.dirty && !q.closed {
				_ = q.w.Sync()
				q.dirty = false
			}
			q.mu.Unlock()
		}
	}
}

// Close syncs and closes the files; queued items stay for the next Open.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	var err error
	if q.opts.Fsync != FsyncNever {
		err = q.w.Sync()
	}
	if cerr := q.w.Close(); err == nil {
		err = cerr
	}
	if q.cur != nil {
		_ = q.cur.Close()
	}
	if q.cf != nil {
		if q.opts.Fsync != FsyncNever {
			_ = q.cf.Sync()
		}
		_ = q.cf.Close()
	}
	q.mu.Unlock()
	close(q.stop)
	<-q.done
	_ = q.lock.Close() // releases the flock
	return err
}
