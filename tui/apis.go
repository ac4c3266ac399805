package tui

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/flexgw/flexgw/stats/topapi"
)

// sortable columns of the APIs table, in display order.
var apiSortCols = []string{"NAME", "RPS", "2XX%", "4XX%", "5XX%", "P50ms", "P95ms", "P99ms", "GW ms", "UPSTR ms", "DENIED"}

func sortValue(r *topapi.Rates, col int) float64 {
	switch col {
	case 1:
		return r.RPS
	case 2:
		return r.Pct2xx
	case 3:
		return r.Pct4xx
	case 4:
		return r.Pct5xx
	case 5:
		return r.P50Ms
	case 6:
		return r.P95Ms
	case 7:
		return r.P99Ms
	case 8:
		return r.AvgOverheadMs
	case 9:
		return r.AvgUpstreamMs
	case 10:
		return float64(r.Denials)
	}
	return 0
}

type rowKind int

const (
	rowAPI rowKind = iota
	rowRoute
	rowService
)

// apiRow is one line of the APIs table: an API or, when expanded, one of
// its routes or services.
type apiRow struct {
	kind    rowKind
	api     string
	name    string
	rates   topapi.Rates
	rpsH    []float64
	p99H    []float64
	nRoutes int
}

func (r *apiRow) id() string { return fmt.Sprintf("%d\x00%s\x00%s", r.kind, r.api, r.name) }

// apisView is the APIs tab: a sortable, filterable table of APIs with
// expandable routes and services, and a drill-down page per API.
type apisView struct {
	sortCol int
	// nameWant is the NAME width the rows on screen asked for at the last
	// render (clicks on the heading and the history query follow it).
	nameWant int
	desc     bool
	filter   string
	editing  bool
	expanded map[string]bool
	rows     []apiRow
	cursor   int
	offset   int
	drill    string
	dOffset  int
	// routeCache keeps the last routes and services seen per API: the TUI
	// asks only for those on screen, so an expanded API scrolled out of
	// view keeps its rows (stale, unseen) instead of collapsing and
	// shifting the table.
	routeCache map[string]apiChildren
}

// apiChildren are the rows an expanded API shows under it.
type apiChildren struct {
	routes   []topapi.Route
	services []topapi.Service
}

func newAPIsView() apisView {
	return apisView{sortCol: 1, desc: true, expanded: map[string]bool{}, routeCache: map[string]apiChildren{}}
}

// compare orders two rows by the sort column, then by name.
func (v *apisView) compare(a, b *topapi.Rates, an, bn string) int {
	c := 0
	if v.sortCol == 0 {
		c = strings.Compare(an, bn)
	} else {
		c = cmp.Compare(sortValue(a, v.sortCol), sortValue(b, v.sortCol))
	}
	if v.desc {
		c = -c
	}
	if c == 0 {
		c = strings.Compare(an, bn)
	}
	return c
}

// rebuild flattens, filters and sorts the snapshot into rows, keeping the
// selection on the same row. It runs on data and setting changes, never
// per frame, so rendering stays proportional to the screen, not the config.
func (v *apisView) rebuild(t *topapi.Top) {
	var keep string
	if v.cursor >= 0 && v.cursor < len(v.rows) {
		keep = v.rows[v.cursor].id()
	}
	v.rows = v.rows[:0]
	if t == nil {
		return
	}
	// Sort pointers, not the structs: with every API expanded this runs
	// over a thousand routes each refresh.
	apis := make([]*topapi.API, len(t.APIs))
	for i := range t.APIs {
		apis[i] = &t.APIs[i]
	}
	f := strings.ToLower(v.filter)
	less := v.compare
	slices.SortFunc(apis, func(a, b *topapi.API) int { return less(&a.Rates, &b.Rates, a.Name, b.Name) })
	var routes []*topapi.Route
	for _, a := range apis {
		if f != "" && !strings.Contains(strings.ToLower(a.Name), f) {
			continue
		}
		v.rows = append(v.rows, apiRow{kind: rowAPI, api: a.Name, name: a.Name, rates: a.Rates, rpsH: a.RPSHistory, p99H: a.P99History, nRoutes: max(a.RouteCount, len(a.Routes))})
		if !v.expanded[a.Name] {
			continue
		}
		if a.Routes != nil || a.Services != nil {
			// The agent sends both together, for the APIs asked for.
			v.routeCache[a.Name] = apiChildren{a.Routes, a.Services}
		}
		cached := v.routeCache[a.Name]
		routes = routes[:0]
		for i := range cached.routes {
			routes = append(routes, &cached.routes[i])
		}
		slices.SortFunc(routes, func(x, y *topapi.Route) int { return less(&x.Rates, &y.Rates, x.Name, y.Name) })
		for _, r := range routes {
			v.rows = append(v.rows, apiRow{kind: rowRoute, api: a.Name, name: r.Name, rates: r.Rates, rpsH: r.RPSHistory, p99H: r.P99History})
		}
		for _, s := range cached.services {
			v.rows = append(v.rows, apiRow{kind: rowService, api: a.Name, name: s.Name, rates: s.Rates})
		}
	}
	v.cursor = min(v.cursor, max(len(v.rows)-1, 0))
	for i := range v.rows {
		if v.rows[i].id() == keep {
			v.cursor = i
			break
		}
	}
}

// visibleExpanded lists the expanded APIs with rows on screen (h rows
// from the scroll offset), sorted: the routes query of the next refresh.
// With a thousand routes expanded only a screenful is fetched and decoded.
func (v *apisView) visibleExpanded(h int) []string {
	var out []string
	end := min(v.offset+h, len(v.rows))
	// Keep the cursor's API even if a resize moved it off screen.
	if r := v.selected(); r != nil && v.expanded[r.api] {
		out = append(out, r.api)
	}
	for i := v.offset; i < end; i++ {
		if a := v.rows[i].api; v.expanded[a] && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	// An API expanded before the first snapshot has no rows yet.
	if len(v.rows) == 0 {
		for a, on := range v.expanded {
			if on {
				out = append(out, a)
			}
		}
	}
	slices.Sort(out)
	return out
}

func (v *apisView) move(d int) {
	if v.drill != "" {
		v.dOffset = max(v.dOffset+d, 0)
		return
	}
	v.cursor = min(max(v.cursor+d, 0), max(len(v.rows)-1, 0))
}

func (v *apisView) selected() *apiRow {
	if v.cursor < 0 || v.cursor >= len(v.rows) {
		return nil
	}
	return &v.rows[v.cursor]
}

func (v *apisView) key(m *model, k tea.KeyPressMsg) tea.Cmd {
	if v.editing {
		v.editing = editLine(&v.filter, k)
		v.cursor = 0
		v.rebuild(m.top)
		return nil
	}
	keys := &apiKeys
	if v.drill != "" {
		keys = &apiDrillKeys
	}
	cmd, _ := keys.dispatch(m, k.String())
	return cmd
}

// toggle expands or collapses the selected row's API.
func (v *apisView) toggle(m *model) tea.Cmd {
	r := v.selected()
	if r == nil {
		return nil
	}
	v.expanded[r.api] = !v.expanded[r.api]
	if r.kind != rowAPI || !v.expanded[r.api] {
		// Collapsing from a child keeps the selection on its API.
		for i := range v.rows {
			if v.rows[i].kind == rowAPI && v.rows[i].api == r.api {
				v.cursor = i
				break
			}
		}
	}
	v.rebuild(m.top)
	// The snapshot carries routes only for expanded APIs: fetch now.
	return m.fetchCmd()
}

// toggleAll expands every API, or collapses them all when all are expanded.
func (v *apisView) toggleAll(m *model) tea.Cmd {
	all := true
	for _, r := range v.rows {
		all = all && (r.kind != rowAPI || v.expanded[r.api])
	}
	for _, r := range v.rows {
		if r.kind == rowAPI {
			v.expanded[r.api] = !all
		}
	}
	v.rebuild(m.top)
	return m.fetchCmd()
}

// setSort sorts by col: names ascending, numbers descending first.
func (v *apisView) setSort(col int, m *model) {
	if col == v.sortCol {
		v.desc = !v.desc
	} else {
		v.sortCol, v.desc = col, col != 0
	}
	v.rebuild(m.top)
}

// apiCol is one column of the APIs table; sortIdx indexes apiSortCols.
type apiCol struct {
	column
	sortIdx int
	cell    func(r *topapi.Rates) string
}

var apiCols = []apiCol{
	{column{"NAME", 0, false}, 0, nil},
	{column{"RPS", 8, true}, 1, func(r *topapi.Rates) string { return fmtRPS(r.RPS) }},
	{column{"2XX%", 5, true}, 2, func(r *topapi.Rates) string { return fmtPct(r.Pct2xx) }},
	{column{"4XX%", 5, true}, 3, func(r *topapi.Rates) string { return fmtPct(r.Pct4xx) }},
	{column{"5XX%", 5, true}, 4, func(r *topapi.Rates) string { return fmtPct(r.Pct5xx) }},
	{column{"P50ms", 6, true}, 5, func(r *topapi.Rates) string { return fmtMs(r.P50Ms) }},
	{column{"P95ms", 6, true}, 6, func(r *topapi.Rates) string { return fmtMs(r.P95Ms) }},
	{column{"P99ms", 6, true}, 7, func(r *topapi.Rates) string { return fmtMs(r.P99Ms) }},
	{column{"GW ms", 6, true}, 8, func(r *topapi.Rates) string { return fmtMs(r.AvgOverheadMs) }},
	{column{"UPSTR ms", 8, true}, 9, func(r *topapi.Rates) string { return fmtMs(r.AvgUpstreamMs) }},
	{column{"DENIED", 6, true}, 10, func(r *topapi.Rates) string { return fmtCount(r.Denials) }},
}

// dropOrder lists the columns given up first on narrow terminals.
var dropOrder = []string{"P95ms", "GW ms", "2XX%", "UPSTR ms", "DENIED"}

// apiColumns returns the columns that fit width w; names longer than
// minName take what they need (nameWant cells) before the sparklines get
// what is left after the numbers; sparklines disappear on narrow
// terminals.
func apiColumns(w, nameWant int) (cols []apiCol, spark int) {
	const minName = 22
	cols = append(cols, apiCols...)
	fixed := func() int {
		n := 2
		for _, c := range cols[1:] {
			n += c.width + 1
		}
		return n
	}
	for _, d := range dropOrder {
		if fixed()+minName <= w {
			break
		}
		for i := range cols {
			if cols[i].title == d {
				cols = append(cols[:i:i], cols[i+1:]...)
				break
			}
		}
	}
	nameW := min(max(nameWant, minName), max(w-fixed(), minName))
	if spare := w - fixed() - nameW; spare >= 2*(8+1) {
		spark = min((spare-2)/2, 30)
		cols = append(cols, apiCol{column: column{"RPS trend", spark, false}, sortIdx: -1}, apiCol{column: column{"P99 trend", spark, false}, sortIdx: -1})
	}
	plain := make([]column, len(cols))
	for i := range cols {
		plain[i] = cols[i].column
	}
	plain = layout(plain, w-2)
	for i := range cols {
		cols[i].column = plain[i]
	}
	return cols, spark
}

func plainCols(cols []apiCol) []column {
	out := make([]column, len(cols))
	for i := range cols {
		out[i] = cols[i].column
	}
	return out
}

func (v *apisView) render(m *model, w, h int) []string {
	if v.drill != "" {
		return v.renderDrill(m, w, h)
	}
	if m.top == nil {
		return []string{"", "  no data yet"}
	}
	nameWant := 0
	for i := v.offset; i < len(v.rows) && i < v.offset+max(h-1, 1); i++ {
		nameWant = max(nameWant, width(v.rowName(&v.rows[i]))+1)
	}
	v.nameWant = nameWant
	acols, spark := apiColumns(w, nameWant)
	cols := plainCols(acols)
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.title
		if acols[i].sortIdx == v.sortCol {
			arrow := "▼"
			if !v.desc {
				arrow = "▲"
			}
			if m.ascii {
				arrow = map[bool]string{true: "v", false: "^"}[v.desc]
			}
			titles[i] = c.title + arrow
		}
	}
	out := []string{m.st.header.Render("  " + row(cols, titles))}
	rowsH := max(h-1, 1)
	if v.cursor < v.offset {
		v.offset = v.cursor
	}
	if v.cursor >= v.offset+rowsH {
		v.offset = v.cursor - rowsH + 1
	}
	v.offset = min(v.offset, max(len(v.rows)-rowsH, 0))
	if len(v.rows) == 0 {
		msg := "  no APIs"
		if v.filter != "" {
			msg = fmt.Sprintf("  no API matches %q (esc clears the filter)", v.filter)
		}
		return append(out, msg)
	}
	cells := make([]string, len(cols))
	for i := v.offset; i < len(v.rows) && i < v.offset+rowsH; i++ {
		r := &v.rows[i]
		name := v.rowName(r)
		rt := &r.rates
		cells = cells[:0]
		for _, c := range acols {
			switch {
			case c.cell != nil:
				cells = append(cells, c.cell(rt))
			case c.sortIdx == 0:
				cells = append(cells, name)
			}
		}
		selected := i == v.cursor && !m.static
		alarm := rt.Pct5xx >= 5
		// Mostly refused requests (auth, rate limits, bad paths) are worth
		// a look too, in a milder colour than server errors.
		clientErrs := !alarm && rt.Pct4xx >= warn4xxPct
		if spark > 0 {
			rs, ps := sparkline(r.rpsH, spark, m.ascii), sparkline(r.p99H, spark, m.ascii)
			// Colour only plain rows: a nested style would end the
			// selection's reverse video or the alarm colour mid-line.
			if !selected && !alarm && !clientErrs {
				rs, ps = m.st.sparkRPS.Render(rs), m.st.sparkP99.Render(ps)
			}
			cells = append(cells, rs, ps)
		}
		line := row(cols, cells)
		prefix := "  "
		switch {
		case selected:
			prefix = "> "
			line = m.st.selected.Render(line)
		case alarm:
			line = m.st.bad.Render(line)
		case clientErrs:
			line = m.st.warn.Render(line)
		}
		out = append(out, prefix+line)
	}
	return out
}

func (v *apisView) click(m *model, x, y int) {
	if v.drill != "" {
		return
	}
	if y == 0 {
		cols, _ := apiColumns(m.width, v.nameWant)
		pos := 2
		for _, c := range cols {
			if x >= pos && x < pos+c.width+1 && c.sortIdx >= 0 {
				v.setSort(c.sortIdx, m)
				return
			}
			pos += c.width + 1
		}
		return
	}
	if i := v.offset + y - 1; i >= 0 && i < len(v.rows) {
		v.cursor = i
	}
}

func (v *apisView) footer(m *model) string {
	switch {
	case v.editing:
		return "filter: " + v.filter + "█   enter keeps · esc clears"
	case v.drill != "":
		return "esc back  ↑↓ scroll  tab/1-4 views  ? help  q quit"
	}
	f := ""
	if v.filter != "" {
		f = fmt.Sprintf("filter %q · ", v.filter)
	}
	return f + fmt.Sprintf("%d rows · sort %s · s/S sort  r reverse  / filter  space expand  enter drill in  ? help  q quit", len(v.rows), apiSortCols[v.sortCol])
}

// renderDrill is one API's page: its totals with wide sparklines, then
// its routes (with their own sparklines) and services.
func (v *apisView) renderDrill(m *model, w, h int) []string {
	var api *topapi.API
	if m.top != nil {
		for i := range m.top.APIs {
			if m.top.APIs[i].Name == v.drill {
				api = &m.top.APIs[i]
			}
		}
	}
	if api == nil {
		return []string{"", fmt.Sprintf("  API %s is not in the current snapshot (esc goes back)", clean(v.drill))}
	}
	st := m.st
	r := &api.Rates
	out := []string{
		st.title.Render("API "+clean(api.Name)) + fmt.Sprintf("  base path %s · listener %s", clean(orDash(api.BasePath)), clean(orDash(api.Listener))),
		fmt.Sprintf("  %s rps · 2xx %s%% · 4xx %s%% · 5xx %s%% · p50 %sms · p95 %sms · p99 %sms · upstream p99 %sms",
			fmtRPS(r.RPS), fmtPct(r.Pct2xx), fmtPct(r.Pct4xx), fmtPct(r.Pct5xx), fmtMs(r.P50Ms), fmtMs(r.P95Ms), fmtMs(r.P99Ms), fmtMs(r.UpstreamP99Ms)),
		fmt.Sprintf("  mean gateway %sms vs upstream %sms · denials %d in window, %d since start · %d requests since start",
			fmtMs(r.AvgOverheadMs), fmtMs(r.AvgUpstreamMs), r.Denials, r.DenialsTotal, r.RequestsTotal),
		"  rps " + sparkline(api.RPSHistory, min(w-8, len(api.RPSHistory)), m.ascii) + fmt.Sprintf(" peak %s", fmtRPS(peak(api.RPSHistory))),
		"  p99 " + sparkline(api.P99History, min(w-8, len(api.P99History)), m.ascii) + fmt.Sprintf(" peak %sms", fmtMs(peak(api.P99History))),
		"",
	}
	var body []string
	cols := layout([]column{{title: "ROUTE"}, {"RPS", 8, true}, {"2XX%", 5, true}, {"4XX%", 5, true}, {"5XX%", 5, true},
		{"P50ms", 6, true}, {"P99ms", 6, true}, {"DENIED", 6, true}, {"RPS trend", 20, false}, {"P99 trend", 20, false}}, w-2)
	body = append(body, st.header.Render("  "+row(cols, []string{"ROUTE", "RPS", "2XX%", "4XX%", "5XX%", "P50ms", "P99ms", "DENIED", "RPS trend", "P99 trend"})))
	routes := slices.Clone(api.Routes)
	slices.SortFunc(routes, func(x, y topapi.Route) int { return v.compare(&x.Rates, &y.Rates, x.Name, y.Name) })
	for _, rt := range routes {
		x := &rt.Rates
		body = append(body, "  "+row(cols, []string{clean(rt.Name), fmtRPS(x.RPS), fmtPct(x.Pct2xx), fmtPct(x.Pct4xx), fmtPct(x.Pct5xx),
			fmtMs(x.P50Ms), fmtMs(x.P99Ms), fmtCount(x.Denials), sparkline(rt.RPSHistory, 20, m.ascii), sparkline(rt.P99History, 20, m.ascii)}))
	}
	body = append(body, "")
	scols := layout([]column{{title: "SERVICE"}, {"RPS", 8, true}, {"5XX%", 5, true}, {"P50ms", 6, true}, {"P99ms", 6, true}, {"UPSTR P99", 9, true}}, w-2)
	body = append(body, st.header.Render("  "+row(scols, []string{"SERVICE", "RPS", "5XX%", "P50ms", "P99ms", "UPSTR P99"})))
	for _, s := range api.Services {
		x := &s.Rates
		body = append(body, "  "+row(scols, []string{clean(s.Name), fmtRPS(x.RPS), fmtPct(x.Pct5xx), fmtMs(x.P50Ms), fmtMs(x.P99Ms), fmtMs(x.UpstreamP99Ms)}))
	}
	v.dOffset = min(v.dOffset, max(len(body)-(h-len(out)), 0))
	return append(out, body[v.dOffset:]...)
}

func peak(v []float64) float64 {
	var p float64
	for _, x := range v {
		p = max(p, x)
	}
	return p
}

// warn4xxPct is the 4xx share from which an APIs row is coloured as a
// warning (5xx from 5 % are an alarm).
const warn4xxPct = 20

// rowName is the NAME cell of an APIs row: its tree mark and route count
// for an API, indented for its routes and services.
func (v *apisView) rowName(r *apiRow) string {
	name := clean(r.name)
	switch r.kind {
	case rowAPI:
		mark := "+"
		if v.expanded[r.api] {
			mark = "-"
		}
		return fmt.Sprintf("%s %s (%d)", mark, name, r.nRoutes)
	case rowRoute:
		return "   route " + name
	case rowService:
		return "   svc " + name
	}
	return name
}
