package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/observe"
	"github.com/flexgw/flexgw/stats"
)

// hostile is request-derived text carrying terminal controls: an escape
// sequence that clears the screen, a C1 CSI (U+009B) that starts one on
// terminals honouring 8-bit controls, BEL, a backspace that hides what
// precedes it, and a right-to-left override that makes "exe.txt" read
// as "txt.exe".
const hostile = "/dl/\x1b[2J\x1b]0;pwned\x07\u009b31m\b\u202etxt.exe\u2066x\u2069"

// controlsIn lists the raw control and bidi characters left in a frame.
func controlsIn(frame string) []string {
	var out []string
	for _, r := range frame {
		if r != '\n' && (r < 0x20 || r == 0x7f || unsafeRune(r)) {
			out = append(out, fmt.Sprintf("%U", r))
		}
	}
	return out
}

// TestHostileTextIsShownEscaped feeds request-derived text with C0/C1
// controls and bidi overrides through a real admin socket (the log stream
// and /api/v1/top) and asserts the rendered frames (plain profile, so any
// ESC in them would be the attacker's) contain none of them raw, and show
// them escaped instead.
func TestHostileTextIsShownEscaped(t *testing.T) {
	snap := &ir.Snapshot{Version: 1, Listeners: []*ir.Listener{{Name: "http", APIs: []*ir.API{
		{Name: "evil\u202eipa", Namespace: "default", BasePath: "/", Routes: []*ir.Route{{Name: "r\x1b[31m"}}},
	}}}}
	clk := &testClock{t: time.Now()}
	s := stats.New(stats.Options{Now: clk.now, Snapshot: func() *ir.Snapshot { return snap },
		Status: func() stats.Status {
			return stats.Status{GatewayID: "gw", DataPlane: "builtin", SnapshotVersion: 1, ReloadOK: false, ReloadError: "conf.d/x.yaml: bad value \"\x1b[5m\u202e\""}
		}})
	url := "http://" + serve(t, "127.0.0.1:0", s.Handler())
	g := &liveGateway{s, clk}
	send := func() {
		defer g.clock.add(time.Second)
		h := g.Hooks()
		_, done := h.Request(context.Background(), observe.RequestInfo{API: "default/evil\u202eipa", Route: "r\x1b[31m", Method: "GET"})
		rec := &accesslog.Record{StartTime: time.Now(), Method: "GET", Path: hostile, ResponseCode: 200,
			APIInstance: "default/evil\u202eipa", Route: "r\x1b[31m", UserAgent: "ua\x1b[1A\u0085", Authority: "h\u202e", RequestID: "id\x00x"}
		done(rec, observe.Timings{Total: time.Millisecond})
		g.Write(rec)
	}

	c, err := newClient(url, "")
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan any, 100)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go c.streamLogs(ctx, 1, "", 50*time.Millisecond, func(m any) { msgs <- m })
	m := newModel(ctx, c.top, url, time.Second, true)
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 30})
	deadline := time.After(20 * time.Second)
	for len(m.logs.recs) == 0 {
		select {
		case msg := <-msgs:
			m.Update(msg)
		case <-deadline:
			t.Fatal("no record streamed")
		case <-time.After(20 * time.Millisecond):
			send()
		}
	}
	run(t, m, m.Init())
	if m.top == nil {
		t.Fatalf("no snapshot: %v", m.err)
	}
	for _, view := range []struct {
		name string
		keys []string
		want []string
	}{
		{"apis", []string{"1", "space"}, []string{`evil\u202eipa`, `r\x1b[31m`, `\x1b[5m\u202e`}},
		{"logs", []string{"3"}, []string{`\x1b[2J\x1b]0;pwned\x07\u009b31m\x08\u202etxt.exe`}},
		{"logs detail", []string{"3", "enter"}, []string{`ua\x1b[1A\u0085`, `h\u202e`, `id\x00x`, `\u202etxt.exe\u2066x\u2069`}},
	} {
		m.logs.detail = false
		run(t, m, press(m, view.keys...)) // expanding an API fetches its routes
		frame := m.View().Content
		if bad := controlsIn(frame); len(bad) > 0 {
			t.Errorf("%s view renders raw controls %q:\n%s", view.name, bad, frame)
		}
		for _, w := range view.want {
			if !strings.Contains(frame, w) {
				t.Errorf("%s view does not show %q escaped:\n%s", view.name, w, frame)
			}
		}
	}
	var once strings.Builder
	if err := Run(t.Context(), Options{AdminURL: url, Once: true, Out: &once, Width: 200}); err != nil {
		t.Fatal(err)
	}
	if bad := controlsIn(once.String()); len(bad) > 0 {
		t.Errorf("--once output has raw controls %q:\n%s", bad, once.String())
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"/plain/path?q=1":  "/plain/path?q=1",
		"héllo wörld ✓":    "héllo wörld ✓",
		"a\tb":             `a\x09b`,
		"\x1b[31mred":      `\x1b[31mred`,
		"c1\u009bx":        `c1\u009bx`,
		"\u202egnp.exe":    `\u202egnp.exe`,
		"l\u200er\u200f":   `l\u200er\u200f`,
		"\u2067iso\u2069":  `\u2067iso\u2069`,
		"del\x7f":          `del\x7f`,
		"nul\x00":          `nul\x00`,
		"arabic\u061cmark": `arabic\u061cmark`,
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}
