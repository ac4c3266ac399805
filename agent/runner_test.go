package agent

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/internal/testutil"
)

// fakeRunner records its lifecycle calls in a shared event list.
type fakeRunner struct {
	name     string
	events   *[]string
	startErr error
	closeErr error
}

func (f *fakeRunner) Name() string { return f.name }

func (f *fakeRunner) Start(context.Context) error {
	*f.events = append(*f.events, "start "+f.name)
	return f.startErr
}

func (f *fakeRunner) Close(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		*f.events = append(*f.events, "close without deadline "+f.name)
	}
	*f.events = append(*f.events, "close "+f.name)
	return f.closeErr
}

// fakeDrainer is a fakeRunner that also drains.
type fakeDrainer struct{ fakeRunner }

func (f *fakeDrainer) Drain(context.Context) error {
	*f.events = append(*f.events, "drain "+f.name)
	return nil
}

func testLifecycle(t *testing.T) (*lifecycle, *testutil.SyncBuffer) {
	var buf testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	return &lifecycle{log: func() *slog.Logger { return log }}, &buf
}

func TestLifecycleStartsInOrderDrainsThenClosesInReverse(t *testing.T) {
	var events []string
	lc, _ := testLifecycle(t)
	rs := []runner{
		&fakeRunner{name: "store", events: &events},
		&fakeDrainer{fakeRunner{name: "dataplane", events: &events}},
		&fakeRunner{name: "admin", events: &events},
	}
	if err := lc.start(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	lc.drain(context.Background())
	if err := lc.close(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"start store", "start dataplane", "start admin",
		"drain dataplane",
		"close admin", "close dataplane", "close store",
	}
	if !slices.Equal(events, want) {
		t.Errorf("events\n got %q\nwant %q", events, want)
	}
	// Run closes on every return path: a second close must not close twice.
	if err := lc.close(); err != nil || len(events) != len(want) {
		t.Errorf("second close: err %v, events %q", err, events[len(want):])
	}
}

func TestLifecycleFailedStartClosesStartedInReverse(t *testing.T) {
	var events []string
	lc, _ := testLifecycle(t)
	boom := errors.New("address already in use")
	rs := []runner{
		&fakeRunner{name: "store", events: &events},
		&fakeRunner{name: "pipeline", events: &events},
		&fakeRunner{name: "admin API", events: &events, startErr: boom},
		&fakeRunner{name: "never", events: &events},
	}
	err := lc.start(context.Background(), rs)
	if !errors.Is(err, boom) {
		t.Fatalf("start error %v, want it to wrap %v", err, boom)
	}
	if !strings.Contains(err.Error(), "start admin API: ") {
		t.Errorf("start error %q does not name the failing part", err)
	}
	want := []string{
		"start store", "start pipeline", "start admin API",
		// The failed part undid its own start; the others close in reverse.
		"close pipeline", "close store",
	}
	if !slices.Equal(events, want) {
		t.Errorf("events\n got %q\nwant %q", events, want)
	}
	if err := lc.close(); err != nil || len(events) != len(want) {
		t.Errorf("close after a failed start: err %v, events %q", err, events[len(want):])
	}
}

func TestLifecycleCloseGoesOnAfterAFailure(t *testing.T) {
	var events []string
	lc, logs := testLifecycle(t)
	rs := []runner{
		&fakeRunner{name: "store", events: &events},
		&fakeRunner{name: "pipeline", events: &events, closeErr: errors.New("3 records left queued")},
		&fakeRunner{name: "admin", events: &events},
	}
	if err := lc.start(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	err := lc.close()
	if err == nil || !strings.Contains(err.Error(), "close pipeline: 3 records left queued") {
		t.Errorf("close error %v, want it to name the pipeline", err)
	}
	want := []string{"start store", "start pipeline", "start admin", "close admin", "close pipeline", "close store"}
	if !slices.Equal(events, want) {
		t.Errorf("events\n got %q\nwant %q", events, want)
	}
	if !strings.Contains(logs.String(), "runner=pipeline") {
		t.Errorf("close failure not logged with the runner's name:\n%s", logs)
	}
}

func TestPartClosesOnlyWhatStarted(t *testing.T) {
	closed := 0
	off := &part{name: "probe", start: func(context.Context) (stopFunc, error) { return nil, nil }}
	on := &part{name: "log", start: func(context.Context) (stopFunc, error) {
		return func(context.Context) error { closed++; return nil }, nil
	}}
	for _, p := range []*part{off, on} {
		if err := p.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if closed != 1 {
		t.Errorf("stop called %d times, want 1 (the part that is off has nothing to stop)", closed)
	}
}
