// Package tui is `flexgw top`: a live terminal dashboard (bubbletea) that
// attaches to a running gateway's admin API and renders what the agent
// computed — /api/v1/top snapshots and the /api/v1/logs/stream tail. It
// computes nothing itself. One file per view: apis.go, upstreams.go,
// logs.go, pipeline.go, plus header.go and help.go; model.go routes
// messages between them.
package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/term"

	"github.com/flexgw/flexgw/stats/topapi"
)

// DefaultAdminURL is where `flexgw top` looks for the admin API when
// --admin is not given.
const DefaultAdminURL = "http://127.0.0.1:9180"

// Options configure Run; they mirror `flexgw top`'s flags.
type Options struct {
	// AdminURL is the gateway's admin API (--admin); "host:port" is accepted.
	AdminURL string
	// Token is sent as "Authorization: Bearer <token>" (--token).
	Token string
	// Refresh is the snapshot interval (--refresh, default 1s).
	Refresh time.Duration
	// Once prints one plain-text frame and exits (--once).
	Once bool
	// Plain prints a plain-text frame every Refresh instead of the
	// full-screen UI (--plain; also chosen when TERM=dumb or Out is not a
	// terminal).
	Plain bool
	// Out receives the frames (default os.Stdout).
	Out io.Writer
	// Width overrides the frame width for Once and Plain (default: the
	// terminal's width, or 120 when Out is not a terminal).
	Width int
}

// Run shows the dashboard until the user quits or ctx ends.
func Run(ctx context.Context, opts Options) error {
	if opts.Refresh <= 0 {
		opts.Refresh = time.Second
	}
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	c, err := newClient(opts.AdminURL, opts.Token)
	if err != nil {
		return err
	}
	if opts.Once {
		t, err := c.top(ctx, frameQuery(frameWidth(opts)))
		if err != nil {
			return fmt.Errorf("gateway at %s: %w", c.base, err)
		}
		_, err = io.WriteString(opts.Out, Frame(t, frameWidth(opts)))
		return err
	}
	if opts.Plain || os.Getenv("TERM") == "dumb" || !isTerminal(opts.Out) {
		// Dumb terminals, pipes and files get text frames, not cursor
		// movement.
		return runPlain(ctx, c, opts)
	}
	return runInteractive(ctx, c, opts)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(f.Fd())
}

func frameWidth(opts Options) int {
	if opts.Width > 0 {
		return opts.Width
	}
	if f, ok := opts.Out.(*os.File); ok && term.IsTerminal(f.Fd()) {
		if w, _, err := term.GetSize(f.Fd()); err == nil && w > 40 {
			return w
		}
	}
	return 120
}

// frameQuery asks for every route and as much history as Frame draws.
func frameQuery(width int) topQuery {
	// Before the first snapshot no name is known: ask for the widest
	// sparkline a frame of this width can draw.
	_, spark := apiColumns(width, 0)
	return topQuery{history: spark, routes: []string{allRoutes}}
}

// runPlain prints a text frame per refresh, for terminals that cannot take
// cursor movement (TERM=dumb, log files, serial consoles).
func runPlain(ctx context.Context, c *client, opts Options) error {
	w := frameWidth(opts)
	t := time.NewTicker(opts.Refresh)
	defer t.Stop()
	for {
		top, err := c.top(ctx, frameQuery(w))
		stamp := time.Now().UTC().Format(time.RFC3339)
		var out string
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			out = fmt.Sprintf("--- %s gateway unreachable at %s: %v (retrying)\n", stamp, c.base, err)
		default:
			out = fmt.Sprintf("--- %s\n%s", stamp, Frame(top, w))
		}
		if _, err := io.WriteString(opts.Out, out); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// rendererFPS caps how often bubbletea diffs and repaints the frame. The
// data changes once per refresh (and four times a second in the Logs
// view), so 60 checks a second mostly wake up to find nothing new; 20
// still answers keys within 50 ms and lets a snapshot and a log batch
// arriving close together share one repaint.
const rendererFPS = 20

// logBatch is how often the agent sends the Logs view a batch of records.
const logBatch = 250 * time.Millisecond

func runInteractive(ctx context.Context, c *client, opts Options) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := newModel(ctx, c.top, c.base, opts.Refresh, false)
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithOutput(opts.Out), tea.WithFPS(rendererFPS))
	// Four log batches a second read as live and cost a quarter of the
	// repaints of ten.
	m.follow = c.followLogs(ctx, logBatch, func(msg any) { p.Send(msg) })
	_, err := p.Run()
	if err != nil && errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return err
	}
	return nil
}

// Frame renders one snapshot as plain text: the header, every API with its
// routes and services, the upstreams and the pipeline. It is what --once
// prints and what --plain prints per refresh.
func Frame(t *topapi.Top, width int) string {
	m := newModel(context.Background(), nil, "", time.Second, true)
	m.width = width
	m.top = t
	for _, a := range t.APIs {
		m.apis.expanded[a.Name] = true
	}
	m.static = true
	m.apis.rebuild(t)
	var b strings.Builder
	for _, l := range m.header()[:2] {
		b.WriteString(l + "\n")
	}
	section := func(title string, lines []string) {
		b.WriteString("\n" + title + "\n")
		for _, l := range lines {
			b.WriteString(strings.TrimRight(clip(l, width), " ") + "\n")
		}
	}
	section("APIs", m.apis.render(m, width, len(m.apis.rows)+1))
	section("Upstreams", m.ups.render(m, width, len(t.Upstreams)+2))
	section("Pipeline", m.pipe.render(m, width, len(t.Pipeline.Exporters)+2))
	return b.String()
}
