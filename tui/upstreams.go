package tui

import (
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/flexgw/flexgw/stats/topapi"
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
	ups := m.top.Upstreams
	if anyShared(ups) {
		probe += " · " + sharedMark + " shared address"
	}
	cols := layoutMin([]column{{title: "SERVICE"}, {"ENDPOINT", 21, false}, {"HEALTH", 9, false}, {"ACTIVE", 9, false}, {"PASSIVE", 8, false},
		{"CONNECTS", 8, true}, {"CONN P50", 8, true}, {"CONN P99", 8, true}, {"RTT P50", 8, true}, {"FAILED", 7, true}}, w-2, upstreamNameMin, upstreamDrop...)
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.title
	}
	out := []string{"  " + probe, st.header.Render("  " + row(cols, titles))}
	if len(ups) == 0 {
		return append(out, "  no upstream endpoints")
	}
	v.cursor = min(v.cursor, len(ups)-1)
	// The selected endpoint's addresses, and who shares them, get the
	// last line when there is something the row cannot show.
	detail := ""
	if !m.static {
		detail = kernelDetail(&ups[v.cursor])
	}
	rowsH := max(h-2, 1)
	if detail != "" {
		rowsH = max(h-3, 1)
	}
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
		ep := clean(u.Endpoint)
		if u.Kernel != nil && u.Kernel.Shared {
			ep += " " + sharedMark
		}
		cells := []string{clean(u.Service), ep, health, clean(orDash(u.Active)), clean(orDash(u.Passive))}
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
	if detail != "" {
		for len(out) < h {
			out = append(out, "")
		}
		out = append(out[:h-1], clip("  "+detail, w))
	}
	return out
}

// sharedMark follows an endpoint whose kernel numbers include those of
// other configured endpoints: the kernel counts per address, and they
// resolve to the same one.
const sharedMark = "⇄"

func anyShared(ups []topapi.Upstream) bool {
	for i := range ups {
		if ups[i].Kernel != nil && ups[i].Kernel.Shared {
			return true
		}
	}
	return false
}

// kernelDetail says which addresses the kernel numbers of u were counted
// on and which other endpoints share them; "" when the row says it all
// (no numbers, or one unshared address that is the endpoint itself).
func kernelDetail(u *topapi.Upstream) string {
	ke := u.Kernel
	if ke == nil {
		return ""
	}
	if ke.ResolveError != "" {
		return clean(u.Endpoint) + ": does not resolve: " + clean(ke.ResolveError)
	}
	if !ke.Shared && (len(ke.Addresses) == 0 || len(ke.Addresses) == 1 && ke.Addresses[0] == u.Endpoint) {
		return ""
	}
	d := clean(u.Endpoint) + " → " + clean(strings.Join(ke.Addresses, ", "))
	if ke.Shared {
		d += " · " + sharedMark + " shared with " + clean(strings.Join(ke.SharedWith, ", ")) + ": numbers include theirs"
	}
	return d
}

// upstreamTitles are the Upstreams tab's columns; upstreamDrop those given
// up first on narrow terminals, so the service name keeps at least
// upstreamNameMin cells (names are what tells the rows apart).
var (
	upstreamTitles  = []string{"SERVICE", "ENDPOINT", "HEALTH", "ACTIVE", "PASSIVE", "CONNECTS", "CONN P50", "CONN P99", "RTT P50", "FAILED"}
	upstreamDrop    = []string{"CONN P50", "RTT P50", "PASSIVE", "ACTIVE", "CONNECTS"}
	upstreamNameMin = 22
)
