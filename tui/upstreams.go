package tui

import (
	tea "charm.land/bubbletea/v2"
)

// upstreamsView is the Upstreams tab: every endpoint with its active and
// passive health and the eBPF probe's TCP view of it.
type upstreamsView struct {
	cursor, offset int
}

func (v *upstreamsView) count(m *model) int {
	if m.top == nil {
		return 0
	}
	return len(m.top.Upstreams)
}

func (v *upstreamsView) move(m *model, d int) {
	v.cursor = min(max(v.cursor+d, 0), max(v.count(m)-1, 0))
}

func (v *upstreamsView) key(m *model, k tea.KeyPressMsg) {
	upstreamKeys.dispatch(m, k.String())
}

func (v *upstreamsView) click(y int) {
	// Rows start two lines below the probe line and the heading.
	if i := v.offset + y - 2; i >= 0 {
		v.cursor = i
	}
}

func (v *upstreamsView) render(m *model, w, h int) []string {
	if m.top == nil {
		return []string{"", "  no data yet"}
	}
	st := m.st
	k := m.top.Kernel
	probe := st.good.Render("eBPF probe on") + ": connect latency (ms) and RTT measured in the kernel"
	if !k.Enabled {
		probe = st.warn.Render("eBPF probe off") + ": " + clean(orDash(k.Reason))
	}
	cols := layoutMin([]column{{title: "SERVICE"}, {"ENDPOINT", 21, false}, {"HEALTH", 9, false}, {"ACTIVE", 9, false}, {"PASSIVE", 8, false},
		{"CONNECTS", 8, true}, {"CONN P50", 8, true}, {"CONN P99", 8, true}, {"RTT P50", 8, true}, {"FAILED", 7, true}}, w-2, upstreamNameMin, upstreamDrop...)
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.title
	}
	out := []string{"  " + probe, st.header.Render("  " + row(cols, titles))}
	ups := m.top.Upstreams
	if len(ups) == 0 {
		return append(out, "  no upstream endpoints")
	}
	v.cursor = min(v.cursor, len(ups)-1)
	rowsH := max(h-2, 1)
	if v.cursor < v.offset {
		v.offset = v.cursor
	}
	if v.cursor >= v.offset+rowsH {
		v.offset = v.cursor - rowsH + 1
	}
	for i := v.offset; i < len(ups) && i < v.offset+rowsH; i++ {
		u := &ups[i]
		health := "healthy"
		if !u.Healthy {
			health = "DOWN"
		}
		cells := []string{clean(u.Service), clean(u.Endpoint), health, clean(orDash(u.Active)), clean(orDash(u.Passive))}
		switch {
		case u.Kernel != nil:
			ke := u.Kernel
			cells = append(cells, fmtCount(ke.Connects), fmtMs(ke.ConnectP50Ms), fmtMs(ke.ConnectP99Ms), fmtMs(ke.RTTP50Ms), fmtCount(ke.Failures))
		case !k.Enabled:
			cells = append(cells, "probe off")
		default:
			cells = append(cells, "no conns")
		}
		line := row(cols, pick(cols, upstreamTitles, cells))
		prefix := "  "
		switch {
		case i == v.cursor && !m.static:
			prefix, line = "> ", st.selected.Render(line)
		case !u.Healthy:
			line = st.bad.Render(line)
		}
		out = append(out, prefix+line)
	}
	return out
}

// upstreamTitles are the Upstreams tab's columns; upstreamDrop those given
// up first on narrow terminals, so the service name keeps at least
// upstreamNameMin cells (names are what tells the rows apart).
var (
	upstreamTitles  = []string{"SERVICE", "ENDPOINT", "HEALTH", "ACTIVE", "PASSIVE", "CONNECTS", "CONN P50", "CONN P99", "RTT P50", "FAILED"}
	upstreamDrop    = []string{"CONN P50", "RTT P50", "PASSIVE", "ACTIVE", "CONNECTS"}
	upstreamNameMin = 22
)
