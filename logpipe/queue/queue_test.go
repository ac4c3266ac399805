package queue

import (
	"fmt"
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
