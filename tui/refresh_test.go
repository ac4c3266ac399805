package tui

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/flexgw/flexgw/stats/topapi"
)

// refreshOnce drives one refresh the way the runtime does: the tick, the
// fetch over the socket, its result, and the frame the runtime asks for.
func refreshOnce(t *testing.T, m *model) topMsg {
	t.Helper()
	cmd := m.updateCmd(tickMsg{})
	if cmd == nil {
		t.Fatal("tick started no fetch")
	}
	msg, ok := run(t, m, cmd).(topMsg)
	if !ok {
		t.Fatal("fetch returned no topMsg")
	}
	_ = m.View()
	return msg
}

// Refreshing faster than the agent's second gets 304s over the socket:
// the model keeps its snapshot and builds no new frame until the agent's
// second moves on.
func TestRefreshNotModifiedBuildsNoFrame(t *testing.T) {
	s, url := liveStats(t)
	traffic(s, 10, 200)
	c, err := newClient(url, "")
	if err != nil {
		t.Fatal(err)
	}
	m := newModel(t.Context(), c.top, url, 100*time.Millisecond, false)
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 30})
	run(t, m, m.Init())
	first := m.View().Content
	top, frames := m.top, m.frames

	for range 3 {
		if msg := refreshOnce(t, m); msg.top != nil || msg.err != nil {
			t.Fatalf("refresh within the agent's second: top=%v err=%v, want a 304 (nil, nil)", msg.top != nil, msg.err)
		}
	}
	if m.top != top || m.frames != frames || m.View().Content != first {
		t.Errorf("a 304 changed the model: same top %v, frames %d→%d", m.top == top, frames, m.frames)
	}

	traffic(s, 30, 200)
	if msg := refreshOnce(t, m); msg.top == nil {
		t.Fatalf("refresh after the agent's second moved: err=%v, want a new snapshot", msg.err)
	}
	if m.frames != frames+1 {
		t.Errorf("new snapshot built %d frames, want 1", m.frames-frames)
	}
	if a := findTopAPI(m.top, "default/orders"); a == nil || a.Requests != 40 {
		t.Errorf("new snapshot: %+v, want 40 requests in the window", a)
	}
}

func findTopAPI(t *topapi.Top, name string) *topapi.API {
	for i := range t.APIs {
		if t.APIs[i].Name == name {
			return &t.APIs[i]
		}
	}
	return nil
}

// A fetch started by a key (expand, drill-down) does not start a second
// refresh timer: one tick chain, whatever the user presses.
func TestKeyFetchKeepsOneTimer(t *testing.T) {
	top := &topapi.Top{APIs: []topapi.API{{Name: "ns/a", RouteCount: 1}, {Name: "ns/b", RouteCount: 1}}}
	fetch := func(context.Context, topQuery) (*topapi.Top, error) { return top, nil }
	m := newModel(context.Background(), fetch, adminLabel, 100*time.Millisecond, false)
	if tick := m.updateCmd(m.Init()()); tick == nil || !m.ticking {
		t.Fatal("first snapshot scheduled no refresh")
	}
	// Expand: a fetch now, while the refresh timer is pending.
	cmd := press(m, "space")
	if cmd == nil {
		t.Fatal("expand fetched nothing")
	}
	if next := m.updateCmd(cmd()); next != nil {
		t.Error("the key's fetch scheduled a second refresh timer")
	}
	// The pending tick fires: its fetch schedules the next one.
	fetchCmd := m.updateCmd(tickMsg{})
	if next := m.updateCmd(fetchCmd()); next == nil || !m.ticking {
		t.Error("the tick's fetch did not schedule the next refresh")
	}
}

// A 304 after an error means the agent is back with the same snapshot:
// the header turns from the error back to connected.
func TestNotModifiedAfterErrorReconnects(t *testing.T) {
	results := []error{nil, errors.New("connection refused"), nil}
	top := &topapi.Top{Header: topapi.Header{GatewayID: "gw-x"}}
	calls := 0
	fetch := func(_ context.Context, q topQuery) (*topapi.Top, error) {
		defer func() { calls++ }()
		if calls > 0 && !q.revalidate {
			t.Error("fetch with a snapshot on screen does not revalidate")
		}
		if err := results[calls]; err != nil {
			return nil, err
		}
		if calls == 0 {
			return top, nil
		}
		return nil, nil
	}
	m := newModel(context.Background(), fetch, adminLabel, 100*time.Millisecond, true)
	run(t, m, m.Init())
	run(t, m, m.updateCmd(tickMsg{}))
	if f := plainFrame(m); !strings.Contains(f, "connection refused") {
		t.Fatalf("error not shown:\n%s", f)
	}
	run(t, m, m.updateCmd(tickMsg{}))
	if f := plainFrame(m); strings.Contains(f, "connection refused") || !strings.Contains(f, "connected") || !strings.Contains(f, "gw-x") {
		t.Errorf("after a 304 the header still shows the error or lost the snapshot:\n%s", f)
	}
}

// A busy gateway over a real socket: the Logs view receives batches of at
// most logBatchLimit records, the newest, and shows how many were skipped.
func TestLogBatchesShowSkipped(t *testing.T) {
	s, url := liveStats(t)
	c, err := newClient(url, "")
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan any, 100)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go c.streamLogs(ctx, 1, "", 50*time.Millisecond, func(m any) { msgs <- m })
	m := newModel(ctx, nil, url, time.Second, true)
	m.view = viewLogs
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 30})
	sent := 0
	deadline := time.After(20 * time.Second)
	for m.logs.skipped == 0 {
		select {
		case msg := <-msgs:
			if b, ok := msg.(logsMsg); ok {
				if len(b.recs) > logBatchLimit && !b.reset {
					t.Errorf("a batch of %d records, limit %d", len(b.recs), logBatchLimit)
				}
				// Subscribed (the backlog arrived): bursts far larger than
				// a batch, until the agent has had to skip some.
				traffic(s, 300, 200)
				sent += 300
			}
			m.Update(msg)
		case <-deadline:
			t.Fatalf("no records skipped after %d sent; frame:\n%s", sent, plainFrame(m))
		}
	}
	if f := plainFrame(m); !strings.Contains(f, "skipped") {
		t.Errorf("skipped records not shown:\n%s", f)
	}
	if n := len(m.logs.recs); n == 0 || n+int(m.logs.skipped) > sent {
		t.Errorf("%d records kept and %d skipped out of %d sent", n, m.logs.skipped, sent)
	}
}

// Views other than APIs fetch no API rows; the table keeps its rows and is
// refreshed as soon as it is shown again.
func TestOtherViewsOmitAPIs(t *testing.T) {
	s, url := liveStats(t)
	traffic(s, 10, 200)
	c, err := newClient(url, "")
	if err != nil {
		t.Fatal(err)
	}
	var last topQuery
	fetch := func(ctx context.Context, q topQuery) (*topapi.Top, error) {
		last = q
		return c.top(ctx, q)
	}
	m := newModel(t.Context(), fetch, url, time.Second, true)
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 30})
	run(t, m, m.Init())
	rows := len(m.apis.rows)
	if last.omitAPIs || rows == 0 {
		t.Fatalf("APIs view: omitAPIs=%v, %d rows", last.omitAPIs, rows)
	}
	press(m, "2")
	traffic(s, 10, 200)
	refreshOnce(t, m)
	if !last.omitAPIs || last.history != 0 {
		t.Errorf("Upstreams view query = %+v, want no API list and no history", last)
	}
	if len(m.top.APIs) == 0 || !strings.Contains(plainFrame(m), "127.0.0.1:9") {
		t.Fatalf("Upstreams view lost the API list (%d) or shows no upstreams:\n%s", len(m.top.APIs), plainFrame(m))
	}
	if m.top.Header.Totals.Requests != 20 {
		t.Errorf("header totals = %d requests, want 20 (every API counted)", m.top.Header.Totals.Requests)
	}
	cmd := press(m, "1")
	if cmd == nil {
		t.Fatal("showing the APIs view again fetched nothing")
	}
	run(t, m, cmd)
	if last.omitAPIs {
		t.Error("APIs view fetched without the API list")
	}
	if a := findTopAPI(m.top, "default/orders"); a == nil || a.Requests != 20 || len(m.apis.rows) != rows {
		t.Errorf("APIs view after returning: %+v, %d rows (want 20 requests, %d rows)", a, len(m.apis.rows), rows)
	}
}
