package queue

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

func item(i int) []byte { return []byte(fmt.Sprintf("item-%06d-%s", i, "payload")) }

func drain(t *testing.T, q *Queue, batch int) []string {
	t.Helper()
	var got []string
	for {
		items, c, err := q.Read(batch, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			return got
		}
		for _, it := range items {
			got = append(got, string(it))
		}
		if err := q.Ack(c); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAppendReadAckAcrossSegmentsAndRestart(t *testing.T) {
	dir := t.TempDir()
	q, err := Open(Options{Dir: dir, SegmentBytes: 4096, Fsync: FsyncAlways})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		if err := q.Append(item(i)); err != nil {
			t.Fatal(err)
		}
	}
	if st := q.Stats(); st.Depth != 1000 {
		t.Fatalf("depth %d", st.Depth)
	}
	// Consume 300 (acknowledged), read 100 more without ack.
	items, c, _ := q.Read(300, 1<<20)
	if len(items) != 300 || string(items[299]) != string(item(299)) {
		t.Fatalf("read %d", len(items))
	}
	if err := q.Ack(c); err != nil {
		t.Fatal(err)
	}
	if items, _, _ := q.Read(100, 1<<20); string(items[0]) != string(item(300)) {
		t.Fatalf("after ack got %s", items[0])
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q, err = Open(Options{Dir: dir, SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if st := q.Stats(); st.Depth != 700 {
		t.Fatalf("after restart depth %d, want 700", st.Depth)
	}
	got := drain(t, q, 64)
	if len(got) != 700 || got[0] != string(item(300)) || got[699] != string(item(999)) {
		t.Fatalf("got %d items, first %q", len(got), got[0])
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(segs) != 1 {
		t.Errorf("%d segments left after everything was acknowledged", len(segs))
	}
}

func TestTornTailIsTruncated(t *testing.T) {
	dir := t.TempDir()
	q, _ := Open(Options{Dir: dir})
	for i := 0; i < 10; i++ {
		_ = q.Append(item(i))
	}
	_ = q.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	f, _ := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
	_, _ = f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 'x'}) // a frame cut short by a crash
	_ = f.Close()
	q, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	_ = q.Append(item(10))
	got := drain(t, q, 100)
	if len(got) != 11 || got[10] != string(item(10)) {
		t.Fatalf("got %v", got)
	}
}

func TestCorruptFrameStopsSegment(t *testing.T) {
	dir := t.TempDir()
	q, _ := Open(Options{Dir: dir})
	for i := 0; i < 5; i++ {
		_ = q.Append(item(i))
	}
	_ = q.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	b, _ := os.ReadFile(segs[0])
	b[len(b)-3] ^= 0xff // flip a byte in the last record
	_ = os.WriteFile(segs[0], b, 0o640)
	q, _ = Open(Options{Dir: dir})
	defer q.Close()
	if got := drain(t, q, 100); len(got) != 4 {
		t.Fatalf("got %d records, want the 4 intact ones", len(got))
	}
}

func TestSizeCapDropsOldestAndCounts(t *testing.T) {
	q, err := Open(Options{Dir: t.TempDir(), MaxBytes: 40_000, SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	const n = 5000
	for i := 0; i < n; i++ {
		if err := q.Append(item(i)); err != nil {
			t.Fatal(err)
		}
	}
	st := q.Stats()
	if st.Bytes > 40_000 {
		t.Fatalf("%d bytes on disk over the cap", st.Bytes)
	}
	got := drain(t, q, 500)
	if int64(len(got))+st.Dropped != n {
		t.Fatalf("delivered %d + dropped %d != %d", len(got), st.Dropped, n)
	}
	if got[len(got)-1] != string(item(n-1)) {
		t.Fatalf("newest record lost")
	}
}

func TestRejectWhenFull(t *testing.T) {
	q, _ := Open(Options{Dir: t.TempDir(), MaxBytes: 8192, SegmentBytes: 4096, RejectWhenFull: true})
	defer q.Close()
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		err = q.Append(item(i))
	}
	if err != ErrFull {
		t.Fatalf("err %v, want ErrFull", err)
	}
	drain(t, q, 1000)
	if err := q.Append(item(0)); err != nil {
		t.Fatalf("after drain: %v", err)
	}
}

func TestSecondOpenFails(t *testing.T) {
	dir := t.TempDir()
	q, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if q2, err := Open(Options{Dir: dir}); err == nil {
		_ = q2.Close()
		t.Fatal("second queue opened over the same directory")
	}
	_ = q.Close()
	q, err = Open(Options{Dir: dir})
	if err != nil {
		t.Fatalf("reopen after close: %v", err)
	}
	_ = q.Close()
}

// ackInOrder appends n items and acknowledges them step records at a time.
func ackInOrder(t *testing.T, q *Queue, n, step int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := q.Append(item(i)); err != nil {
			t.Fatal(err)
		}
	}
	for done := 0; done < n; done += step {
		items, c, err := q.Read(step, 1<<20)
		if err != nil || len(items) != min(step, n-done) {
			t.Fatalf("read %d items, err %v", len(items), err)
		}
		if err := q.Ack(c); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTornCursorSlotResendsNeverLoses: the acknowledgement being written
// when the process dies is torn; the queue restarts from the previous one,
// so the last batch is delivered again and nothing is skipped.
func TestTornCursorSlotResendsNeverLoses(t *testing.T) {
	dir := t.TempDir()
	q, _ := Open(Options{Dir: dir, Fsync: FsyncAlways})
	ackInOrder(t, q, 30, 10)
	for i := 30; i < 40; i++ {
		_ = q.Append(item(i))
	}
	_ = q.Close()
	// Three acknowledgements: sequence 3 (the newest, slot 1) says 30 are
	// done. Tear it.
	path := filepath.Join(dir, "cursor")
	b, err := os.ReadFile(path)
	if err != nil || len(b) != 2*slotSize {
		t.Fatalf("cursor file: %d bytes, %v", len(b), err)
	}
	b[slotSize+5] ^= 0xff
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
	q, err = Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	got := drain(t, q, 100)
	if len(got) != 20 || got[0] != string(item(20)) || got[19] != string(item(39)) {
		t.Fatalf("after a torn acknowledgement got %d items from %q, want items 20..39", len(got), got[0])
	}
	// The position written next goes to the other slot and wins.
	_ = q.Close()
	q, _ = Open(Options{Dir: dir})
	defer q.Close()
	if got := drain(t, q, 100); len(got) != 0 {
		t.Fatalf("%d items delivered again after a clean acknowledgement", len(got))
	}
}

// TestLegacyCursorIsRead: a queue left by a release that wrote the cursor
// as one 28-byte record resumes where it stood.
func TestLegacyCursorIsRead(t *testing.T) {
	dir := t.TempDir()
	q, _ := Open(Options{Dir: dir})
	for i := 0; i < 10; i++ {
		_ = q.Append(item(i))
	}
	_ = q.Close()
	// The old format: seg, off, n as uint64, CRC32C of those 24 bytes.
	off := int64(4 * (frameHeader + len(item(0))))
	b := make([]byte, legacySize)
	binary.LittleEndian.PutUint64(b, 1)
	binary.LittleEndian.PutUint64(b[8:], uint64(off))
	binary.LittleEndian.PutUint64(b[16:], 4)
	binary.LittleEndian.PutUint32(b[24:], crc32.Checksum(b[:24], castagnoli))
	if err := os.WriteFile(filepath.Join(dir, "cursor"), b, 0o640); err != nil {
		t.Fatal(err)
	}
	q, _ = Open(Options{Dir: dir})
	if st := q.Stats(); st.Depth != 6 {
		t.Fatalf("depth %d after a legacy cursor at record 4, want 6", st.Depth)
	}
	items, c, _ := q.Read(2, 1<<20)
	if string(items[0]) != string(item(4)) {
		t.Fatalf("first item %q, want %q", items[0], item(4))
	}
	_ = q.Ack(c)
	_ = q.Close()
	q, _ = Open(Options{Dir: dir})
	defer q.Close()
	if got := drain(t, q, 100); len(got) != 4 || got[0] != string(item(6)) {
		t.Fatalf("after upgrading the cursor got %v", got)
	}
}

// TestAppendFramesAcrossSegments: frames built by BeginFrame/EndFrame go
// in as they are, split between segments at frame boundaries, read back
// in order after a restart, and a buffer that is not whole frames is
// refused without writing anything.
func TestAppendFramesAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	q, err := Open(Options{Dir: dir, SegmentBytes: 4096, Fsync: FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for g := 0; g < 20; g++ {
		var frames []byte
		for i := 0; i < 37; i++ {
			start := len(frames)
			frames = append(BeginFrame(frames), item(g*37+i)...)
			EndFrame(frames, start)
			want = append(want, string(item(g*37+i)))
		}
		if err := q.AppendFrames(frames); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.AppendFrames([]byte{1, 0, 0, 0, 0}); err == nil {
		t.Fatal("torn frame accepted")
	}
	if st := q.Stats(); st.Depth != len(want) {
		t.Fatalf("depth %d, want %d", st.Depth, len(want))
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if len(segs) < 5 {
		t.Fatalf("%d segments, want the appends split over several", len(segs))
	}
	q, err = Open(Options{Dir: dir, SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	got := drain(t, q, 100)
	if len(got) != len(want) {
		t.Fatalf("read %d of %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("item %d: %q, want %q", i, got[i], want[i])
		}
	}
}
