package tui

import (
	"context"

	"github.com/charmbracelet/x/ansi"

	"strings"
	"testing"

	"github.com/flexgw/flexgw/stats/topapi"

	tea "charm.land/bubbletea/v2"
)

func rowNames(m *model) []string {
	var out []string
	for _, r := range m.apis.rows {
		out = append(out, r.name)
	}
	return out
}

func TestKeysSortFilterExpand(t *testing.T) {
	m := fixtureModel(t)
	if got := strings.Join(rowNames(m), ","); got != "default/orders,default/users,unmatched" {
		t.Fatalf("default order (RPS desc) = %s", got)
	}
	press(m, "r") // reverse: RPS ascending
	if got := rowNames(m)[0]; got != "unmatched" {
		t.Errorf("after r, first row = %s", got)
	}
	press(m, "S") // previous column from RPS: NAME, ascending
	if m.apis.sortCol != 0 || m.apis.desc {
		t.Errorf("S from RPS: sortCol=%d desc=%v, want NAME ascending", m.apis.sortCol, m.apis.desc)
	}
	if got := strings.Join(rowNames(m), ","); got != "default/orders,default/users,unmatched" {
		t.Errorf("name order = %s", got)
	}
	// Filter by typing; enter keeps it, esc clears it.
	press(m, "/", "u", "s", "e", "r")
	if !m.editing() || m.apis.filter != "user" {
		t.Fatalf("editing=%v filter=%q", m.editing(), m.apis.filter)
	}
	press(m, "q") // typed into the filter, not quitting
	press(m, "backspace", "enter")
	if m.editing() || strings.Join(rowNames(m), ",") != "default/users" {
		t.Errorf("after filter: editing=%v rows=%v", m.editing(), rowNames(m))
	}
	press(m, "esc")
	if len(m.apis.rows) != 3 {
		t.Errorf("esc did not clear the filter: %v", rowNames(m))
	}
	// Expand the selected API and collapse it from a child row.
	press(m, "g", "space")
	if got := strings.Join(rowNames(m), ","); got != "default/orders,create-order,get-order,legacy,default/orders-svc,default/users,unmatched" {
		t.Errorf("expanded rows = %s", got)
	}
	press(m, "down", "down", "space")
	if len(m.apis.rows) != 3 || m.apis.selected().name != "default/orders" {
		t.Errorf("collapse from a route: rows=%v selected=%v", rowNames(m), m.apis.selected())
	}
}

func TestKeysDrillFetchesRouteHistory(t *testing.T) {
	m := fixtureModel(t)
	var asked []topQuery
	inner := m.fetch
	m.fetch = func(ctx context.Context, q topQuery) (*topapi.Top, error) {
		asked = append(asked, q)
		return inner(ctx, q)
	}
	run(t, m, press(m, "enter"))
	if m.apis.drill != "default/orders" || len(asked) != 1 || asked[0].api != "default/orders" {
		t.Fatalf("drill=%q queries=%+v", m.apis.drill, asked)
	}
	if !strings.Contains(plainFrame(m), "API default/orders") {
		t.Error("drill-down page not shown")
	}
	run(t, m, press(m, "esc"))
	if m.apis.drill != "" || asked[len(asked)-1].api != "" {
		t.Errorf("esc did not leave the drill-down: %q %+v", m.apis.drill, asked)
	}
}

func TestKeysViewsHelpQuit(t *testing.T) {
	m := fixtureModel(t)
	for i, k := range []string{"tab", "tab", "tab", "tab"} {
		press(m, k)
		if want := viewID((i + 1) % int(numViews)); m.view != want {
			t.Errorf("after %d tabs view = %d, want %d", i+1, m.view, want)
		}
	}
	press(m, "3")
	if m.view != viewLogs {
		t.Errorf("3 → view %d", m.view)
	}
	press(m, "?")
	if !m.help || !strings.Contains(plainFrame(m), "keys") {
		t.Error("? did not open help")
	}
	if cmd := press(m, "q"); cmd != nil || m.help {
		t.Error("q in help should close help, not quit")
	}
	if _, ok := press(m, "q")().(tea.QuitMsg); !ok {
		t.Error("q did not quit")
	}
	if _, ok := press(m, "ctrl+c")().(tea.QuitMsg); !ok {
		t.Error("ctrl+c did not quit")
	}
	press(m, "3", "/")
	if _, ok := press(m, "ctrl+c")().(tea.QuitMsg); !ok {
		t.Error("ctrl+c while editing did not quit")
	}
}

func TestKeysLogsPauseFilterDetail(t *testing.T) {
	m := fixtureModel(t)
	press(m, "3", "p")
	m.Update(logsMsg{recs: fixtureLogs(t)[:5], gen: 1})
	if len(m.logs.recs) != 40 || len(m.logs.pending) != 5 || !strings.Contains(plainFrame(m), "PAUSED (5 new)") {
		t.Fatalf("pause: recs=%d pending=%d", len(m.logs.recs), len(m.logs.pending))
	}
	press(m, "space")
	if len(m.logs.recs) != 45 || m.logs.paused {
		t.Errorf("resume: recs=%d paused=%v", len(m.logs.recs), m.logs.paused)
	}
	press(m, "e")
	for _, s := range m.logs.matching() {
		if r := m.logs.rec(s); r.ResponseCode < 500 {
			t.Errorf("status filter let %d through", r.ResponseCode)
		}
	}
	press(m, "c", "/", "r", "e", "q", "-", "0", "0", "0", "3", "enter")
	// The five replayed records repeat req-0003.
	if got := m.logs.matching(); len(got) != 2 {
		t.Fatalf("text filter req-0003 matched %d records, want 2", len(got))
	}
	press(m, "enter")
	if f := plainFrame(m); !strings.Contains(f, "trace id     4bf92f3577b34da6a3ce929d0e0e0003") {
		t.Errorf("details do not show the trace id:\n%s", f)
	}
	press(m, "esc", "c", "up", "up", "a")
	if m.logs.api != "default/orders" {
		t.Errorf("a picked api %q from the selected record", m.logs.api)
	}
}

func TestMouse(t *testing.T) {
	m := fixtureModel(t)
	// Click the "3 Logs" tab.
	x := len(tabLabel(0)) + 1 + len(tabLabel(1)) + 2
	m.Update(tea.MouseClickMsg{X: x, Y: headerLines - 1, Button: tea.MouseLeft})
	if m.view != viewLogs {
		t.Fatalf("tab click → view %d", m.view)
	}
	press(m, "1")
	// Click the NAME heading: sort by name.
	m.Update(tea.MouseClickMsg{X: 4, Y: headerLines, Button: tea.MouseLeft})
	if m.apis.sortCol != 0 {
		t.Errorf("heading click → sort column %d", m.apis.sortCol)
	}
	// Click the third row, then wheel up.
	m.Update(tea.MouseClickMsg{X: 4, Y: headerLines + 3, Button: tea.MouseLeft})
	if m.apis.cursor != 2 {
		t.Errorf("row click → cursor %d", m.apis.cursor)
	}
	m.Update(tea.MouseWheelMsg{Button: tea.MouseWheelUp})
	if m.apis.cursor != 0 {
		t.Errorf("wheel up → cursor %d", m.apis.cursor)
	}
}

func TestNeverPanicsWithoutData(t *testing.T) {
	m := newModel(t.Context(), nil, adminLabel, 0, false)
	for _, k := range []string{"down", "up", "enter", "space", "s", "r", "/", "x", "esc", "2", "down", "3", "up", "enter", "e", "a", "p", "4", "?", "esc"} {
		press(m, k)
		_ = m.View()
	}
	m.Update(tea.WindowSizeMsg{Width: 5, Height: 2})
	for v := range numViews {
		m.view, m.cached = v, ""
		_ = m.View()
	}
	m.Update(tea.MouseClickMsg{X: 3, Y: 9})
}

func TestWidthMatchesAnsi(t *testing.T) {
	st := newStyles(false)
	for _, s := range []string{"", "plain", "a·b…c▼", "▁▂▃█", st.bad.Render("reload FAILED: x"), st.selected.Render("row ▇▆"), "tab\tx", "日本語", "\x1b[1;7m 1 APIs \x1b[0m"} {
		if got, want := width(s), ansi.StringWidth(s); got != want {
			t.Errorf("width(%q) = %d, ansi.StringWidth = %d", s, got, want)
		}
	}
}

// The keymap tables are the single source of dispatch and help: no key is
// bound twice in one scope, no view binds a key the global table takes
// first (it would never reach the view), and every help line names keys.
func TestKeymapTables(t *testing.T) {
	global := map[string]bool{"ctrl+c": true}
	for _, b := range globalKeys.bindings {
		for _, k := range b.keys {
			global[k] = true
		}
	}
	for name, km := range map[string]*keymap{"global": &globalKeys, "APIs": &apiKeys, "API detail": &apiDrillKeys, "Upstreams": &upstreamKeys, "Logs": &logKeys} {
		seen := map[string]bool{}
		for _, b := range km.bindings {
			if b.do != nil && len(b.keys) == 0 {
				t.Errorf("%s: a binding with an action has no key", name)
			}
			if b.help != "" && b.label == "" && len(b.keys) == 0 {
				t.Errorf("%s: help %q names no key", name, b.help)
			}
			for _, k := range b.keys {
				if seen[k] {
					t.Errorf("%s: %q bound twice", name, k)
				}
				seen[k] = true
				if km != &globalKeys && global[k] {
					t.Errorf("%s: %q is taken by the global keys first and never reaches the view", name, k)
				}
			}
		}
	}
	// The overlay shows every documented binding of the tables it lists.
	m := fixtureModel(t)
	help := ansi.Strip(strings.Join(m.helpLines(), "\n"))
	for _, km := range []*keymap{&globalKeys, &apiKeys, &logKeys} {
		for _, b := range km.bindings {
			if b.help != "" && !strings.Contains(help, b.help) {
				t.Errorf("help overlay misses %q", b.help)
			}
		}
	}
}
