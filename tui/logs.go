package tui

import (
	"fmt"
	"net/url"
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/flexgw/flexgw/accesslog"
)

// logKeep is how many streamed records the Logs tab keeps.
const logKeep = 2000

// logsView is the Logs tab: a live tail of access-log records with
// filters, pause, and one record's details.
type logsView struct {
	recs []logRecord
	// base is the sequence number of recs[0]; selections are sequence
	// numbers so they survive trimming.
	base       uint64
	paused     bool
	pending    []logRecord
	errorsOnly bool
	api        string
	text       string
	editing    bool
	// sel is the selected record's sequence number; following means the
	// view tracks the newest record instead.
	sel       uint64
	following bool
	detail    bool
	visible   []uint64
	// gen is the log connection the records came from.
	gen uint64
	// skipped counts records the server left out of its batches (only the
	// newest logBatchLimit of each are sent).
	skipped uint64
}

// serverQuery is the committed filters as stream query parameters; the
// text filter applies on the server once editing ends.
func (v *logsView) serverQuery() string {
	q := url.Values{}
	if v.errorsOnly {
		q.Set("status", "500")
	}
	if v.api != "" {
		q.Set("api", v.api)
	}
	if v.text != "" && !v.editing {
		q.Set("q", v.text)
	}
	return q.Encode()
}

// receive applies a batch from the stream.
func (v *logsView) receive(msg logsMsg) {
	if msg.gen < v.gen {
		return // a late batch of a connection already replaced
	}
	if msg.reset {
		v.gen = msg.gen
		v.base += uint64(len(v.recs))
		v.recs = v.recs[:0]
		v.pending = nil
	}
	v.skipped = msg.skipped
	v.add(msg.recs)
}

func (v *logsView) add(b []logRecord) {
	if v.paused {
		v.pending = append(v.pending, b...)
		if over := len(v.pending) - logKeep; over > 0 {
			v.pending = v.pending[over:]
		}
		return
	}
	v.recs = append(v.recs, b...)
	if over := len(v.recs) - logKeep; over > 0 {
		v.recs = append(v.recs[:0], v.recs[over:]...)
		v.base += uint64(over)
	}
}

func (v *logsView) match(r *logRecord) bool {
	if v.errorsOnly && r.ResponseCode < 500 && r.ResponseCode != 0 {
		return false
	}
	if v.api != "" && apiName(r.API) != v.api {
		return false
	}
	if v.text != "" {
		t := strings.ToLower(v.text)
		for _, s := range [...]string{r.Path, r.Method, r.API, r.Route, r.UpstreamHost, r.RequestID, r.TraceID, fmt.Sprint(r.ResponseCode)} {
			if strings.Contains(strings.ToLower(s), t) {
				return true
			}
		}
		return false
	}
	return true
}

// matching returns the sequence numbers of records passing the filters.
func (v *logsView) matching() []uint64 {
	out := make([]uint64, 0, len(v.recs))
	for i := range v.recs {
		if v.match(&v.recs[i]) {
			out = append(out, v.base+uint64(i))
		}
	}
	return out
}

func (v *logsView) rec(seq uint64) *logRecord {
	if seq < v.base || seq-v.base >= uint64(len(v.recs)) {
		return nil
	}
	return &v.recs[seq-v.base]
}

func (v *logsView) move(d int) {
	ms := v.matching()
	if len(ms) == 0 {
		return
	}
	i := len(ms) - 1
	if !v.following {
		for j, s := range ms {
			if s >= v.sel {
				i = j
				break
			}
		}
		i += d
	} else if d > 0 {
		return
	}
	if i >= len(ms) {
		v.following = true
		return
	}
	v.following = false
	v.sel = ms[max(i, 0)]
}

func (v *logsView) key(m *model, k tea.KeyPressMsg) {
	if v.editing {
		v.editing = editLine(&v.text, k)
		return
	}
	logKeys.dispatch(m, k.String())
}

// togglePause pauses the stream, or resumes it with what arrived meanwhile.
func (v *logsView) togglePause() {
	v.paused = !v.paused
	if !v.paused {
		p := v.pending
		v.pending = nil
		v.add(p)
	}
}

// current is the selected record, or the newest matching one when following.
func (v *logsView) current() *logRecord {
	if !v.following {
		return v.rec(v.sel)
	}
	for i := len(v.recs) - 1; i >= 0; i-- {
		if v.match(&v.recs[i]) {
			return &v.recs[i]
		}
	}
	return nil
}

func (v *logsView) click(y int) {
	if v.detail {
		return
	}
	if i := y - 2; i >= 0 && i < len(v.visible) {
		v.following, v.sel = false, v.visible[i]
	}
}

func (v *logsView) filters() string {
	var f []string
	if v.errorsOnly {
		f = append(f, "status ≥ 500")
	}
	if v.api != "" {
		f = append(f, "api "+v.api)
	}
	if v.text != "" {
		f = append(f, fmt.Sprintf("text %q", v.text))
	}
	if len(f) == 0 {
		return "none"
	}
	return strings.Join(f, ", ")
}

func (v *logsView) render(m *model, w, h int) []string {
	st := m.st
	state := st.good.Render("live")
	if v.paused {
		state = st.warn.Render(fmt.Sprintf("PAUSED (%d new)", len(v.pending)))
	} else if !m.streamOn {
		state = st.warn.Render("not connected")
	}
	head := fmt.Sprintf("  %s · filters: %s · %d records kept", state, v.filters(), len(v.recs))
	if v.skipped > 0 {
		head += fmt.Sprintf(" · busy: newest %d per batch shown, %d skipped", logBatchLimit, v.skipped)
	}
	out := []string{head}
	if v.detail {
		return append(out, v.renderDetail(m)...)
	}
	cols := layoutMin([]column{{"TIME", 12, false}, {"METHOD", 7, false}, {"STATUS", 6, true}, {"MS", 6, true}, {"API", 18, false},
		{"ROUTE", 14, false}, {title: "PATH"}, {"UPSTREAM", 21, false}}, w-2, logPathMin, logDrop...)
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.title
	}
	out = append(out, st.header.Render("  "+row(cols, titles)))
	ms := v.matching()
	rowsH := max(h-2, 1)
	end := len(ms)
	if !v.following {
		for j, s := range ms {
			if s >= v.sel {
				end = min(j+rowsH/2+1, len(ms))
				break
			}
		}
	}
	start := max(end-rowsH, 0)
	end = min(start+rowsH, len(ms))
	v.visible = append(v.visible[:0], ms[start:end]...)
	if len(ms) == 0 {
		return append(out, "  no records yet"+map[bool]string{true: " match the filters (c clears)", false: ""}[len(v.recs) > 0])
	}
	for _, seq := range v.visible {
		r := v.rec(seq)
		status := fmt.Sprint(r.ResponseCode)
		if r.ResponseCode == 0 {
			status = "-"
		}
		line := row(cols, pick(cols, logTitles, []string{r.StartTime.UTC().Format("15:04:05.000"), r.Method, status, fmt.Sprint(r.DurationMs),
			apiName(r.API), routeName(r), r.Path, orDash(r.UpstreamHost)}))
		prefix := "  "
		switch {
		case !v.following && seq == v.sel:
			prefix, line = "> ", st.selected.Render(line)
		case r.ResponseCode >= 500 || r.ResponseCode == 0:
			line = st.bad.Render(line)
		case r.ResponseCode >= 400:
			line = st.warn.Render(line)
		}
		out = append(out, prefix+line)
	}
	return out
}

func (v *logsView) renderDetail(m *model) []string {
	r := v.current()
	if r == nil {
		return []string{"  no record selected"}
	}
	up := "-"
	if r.UpstreamMs != nil {
		up = fmt.Sprintf("%d ms", *r.UpstreamMs)
	}
	kv := [][2]string{
		{"time", r.StartTime.UTC().Format("2006-01-02 15:04:05.000Z")},
		{"request", r.Method + " " + r.Path + " " + r.Protocol},
		{"authority", orDash(r.Authority)},
		{"status", fmt.Sprintf("%d  flags %s", r.ResponseCode, orDash(r.ResponseFlags))},
		{"duration", fmt.Sprintf("%d ms total, upstream %s", r.DurationMs, up)},
		{"bytes", fmt.Sprintf("%d received, %d sent", r.BytesReceived, r.BytesSent)},
		{"api / route", apiName(r.API) + " / " + routeName(r)},
		{"upstream", orDash(r.UpstreamHost) + " (" + orDash(r.Cluster) + ")"},
		{"policy", orDash(r.Policy) + " " + r.PolicyOutcome},
		{"client", orDash(r.Remote) + "  " + r.UserAgent},
		{"request id", orDash(r.RequestID)},
		{"trace id", orDash(r.TraceID)},
		{"gateway", orDash(r.GatewayID)},
	}
	out := []string{m.st.title.Render("  record details") + m.st.dim.Render("  (esc closes)")}
	for _, p := range kv {
		out = append(out, fmt.Sprintf("  %-12s %s", p[0], p[1]))
	}
	return out
}

func (v *logsView) footer(m *model) string {
	if v.editing {
		return "search: " + v.text + "█   enter keeps · esc clears"
	}
	if v.detail {
		return "esc close details  ↑↓ previous/next  ? help  q quit"
	}
	return "e status≥500  a this API  / search  c clear  p pause  enter details  end follow  ? help  q quit"
}

// apiName is the name a record's API is shown and filtered by: requests no
// API served are accesslog.Unmatched, as in the metrics and the APIs tab.
func apiName(api string) string {
	if api == "" {
		return accesslog.Unmatched
	}
	return api
}

// routeName is the record's route, accesslog.Unmatched when no route (or
// no API) served it, as the metrics' route label.
func routeName(r *logRecord) string {
	if r.API == "" || r.Route == "" {
		return accesslog.Unmatched
	}
	return r.Route
}

// logTitles are the Logs tab's columns; logDrop those given up first on
// narrow terminals so the path keeps at least logPathMin cells.
var (
	logTitles  = []string{"TIME", "METHOD", "STATUS", "MS", "API", "ROUTE", "PATH", "UPSTREAM"}
	logDrop    = []string{"UPSTREAM", "ROUTE", "MS"}
	logPathMin = 24
)
