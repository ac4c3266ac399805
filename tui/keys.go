package tui

import (
	"strings"

	tea "charm.land/bubbletea/v2"
)

// The keymap is data: each scope's table gives both what a key does
// (dispatch) and what the help overlay says about it, so the two cannot
// drift apart. Keys are spelled as tea.KeyPressMsg.String() spells them.

// binding is one line of a keymap.
type binding struct {
	keys []string
	// label is how the help names the keys; "" joins keys with ", ".
	label string
	help  string
	// do acts on the key pressed (one of keys); a nil do is documented
	// here but handled elsewhere (the mouse, text editing).
	do func(m *model, key string) tea.Cmd
}

// keymap is one scope's bindings; title heads its help section.
type keymap struct {
	title    string
	bindings []binding
}

// dispatch runs the binding of key, reporting whether there was one.
func (km *keymap) dispatch(m *model, key string) (tea.Cmd, bool) {
	for _, b := range km.bindings {
		for _, k := range b.keys {
			if k == key && b.do != nil {
				return b.do(m, key), true
			}
		}
	}
	return nil, false
}

// helpLines renders the keymap as help lines, the labels in one column.
func (km *keymap) helpLines() []string {
	var out []string
	for _, b := range km.bindings {
		if b.help == "" {
			continue
		}
		label := b.label
		if label == "" {
			label = strings.Join(b.keys, ", ")
		}
		out = append(out, "  "+padRight(label, 22)+" "+b.help)
	}
	return out
}

func padRight(s string, n int) string {
	if w := len([]rune(s)); w < n {
		return s + strings.Repeat(" ", n-w)
	}
	return s
}

// moveKeys are the selection movements every list view shares; move
// moves the selection by d rows.
func moveKeys(move func(m *model, d int)) []binding {
	return []binding{
		{keys: []string{"up", "k"}, do: func(m *model, _ string) tea.Cmd { move(m, -1); return nil }},
		{keys: []string{"down", "j"}, do: func(m *model, _ string) tea.Cmd { move(m, 1); return nil }},
		{keys: []string{"pgup"}, do: func(m *model, _ string) tea.Cmd { move(m, -m.bodyHeight()); return nil }},
		{keys: []string{"pgdown"}, do: func(m *model, _ string) tea.Cmd { move(m, m.bodyHeight()); return nil }},
	}
}

// globalKeys work in every view unless it is editing text (ctrl+c even then).
var globalKeys = keymap{bindings: []binding{
	{keys: []string{"tab"}, label: "tab / shift+tab, 1-4", help: "switch view (APIs, Upstreams, Logs, Pipeline); click a tab",
		do: func(m *model, _ string) tea.Cmd { m.view = (m.view + 1) % numViews; return nil }},
	{keys: []string{"shift+tab"}, do: func(m *model, _ string) tea.Cmd { m.view = (m.view + numViews - 1) % numViews; return nil }},
	{keys: []string{"1", "2", "3", "4"}, do: func(m *model, k string) tea.Cmd { m.view = viewID(k[0] - '1'); return nil }},
	{label: "↑↓ j k, pgup pgdn", help: "move the selection; mouse wheel scrolls, click selects"}, // each view's moveKeys
	{keys: []string{"?"}, help: "this help", do: func(m *model, _ string) tea.Cmd { m.help = true; return nil }},
	{keys: []string{"q"}, label: "q, ctrl+c", help: "quit", do: func(*model, string) tea.Cmd { return tea.Quit }},
}}

// apiDrillKeys apply while one API's detail is open.
var apiDrillKeys = keymap{bindings: append([]binding{
	{keys: []string{"esc", "backspace", "left", "h"}, do: func(m *model, _ string) tea.Cmd {
		m.apis.drill, m.apis.dOffset = "", 0
		return m.fetchCmd()
	}},
}, moveKeys(func(m *model, d int) { m.apis.move(d) })...)}

var apiKeys = keymap{title: "APIs", bindings: append(moveKeys(func(m *model, d int) { m.apis.move(d) }),
	binding{keys: []string{"home", "g"}, do: func(m *model, _ string) tea.Cmd { m.apis.cursor = 0; return nil }},
	binding{keys: []string{"end", "G"}, do: func(m *model, _ string) tea.Cmd { m.apis.cursor = max(len(m.apis.rows)-1, 0); return nil }},
	binding{keys: []string{"s", "S"}, label: "s / S", help: "sort by the next / previous column; r reverses; click a heading",
		do: func(m *model, k string) tea.Cmd {
			d := 1
			if k == "S" {
				d = len(apiSortCols) - 1
			}
			m.apis.setSort((m.apis.sortCol+d)%len(apiSortCols), m)
			return nil
		}},
	binding{keys: []string{"r"}, do: func(m *model, _ string) tea.Cmd { m.apis.desc = !m.apis.desc; m.apis.rebuild(m.top); return nil }},
	binding{keys: []string{"/"}, help: "filter by name (enter keeps it, esc clears it)", do: func(m *model, _ string) tea.Cmd { m.apis.editing = true; return nil }},
	binding{keys: []string{"esc"}, do: func(m *model, _ string) tea.Cmd {
		if m.apis.filter != "" {
			m.apis.filter = ""
			m.apis.rebuild(m.top)
		}
		return nil
	}},
	binding{keys: []string{"space", "right", "l"}, label: "space, →", help: "expand or collapse the API's routes and services; E all",
		do: func(m *model, _ string) tea.Cmd { return m.apis.toggle(m) }},
	binding{keys: []string{"E"}, do: func(m *model, _ string) tea.Cmd { return m.apis.toggleAll(m) }},
	binding{keys: []string{"enter"}, help: "drill into the API; esc goes back", do: func(m *model, _ string) tea.Cmd {
		if r := m.apis.selected(); r != nil {
			m.apis.drill, m.apis.dOffset = r.api, 0
			return m.fetchCmd()
		}
		return nil
	}},
)}

var upstreamKeys = keymap{bindings: moveKeys(func(m *model, d int) { m.ups.move(m, d) })}

var logKeys = keymap{title: "Logs", bindings: []binding{
	{keys: []string{"up", "k"}, do: func(m *model, _ string) tea.Cmd { m.logs.move(-1); return nil }},
	{keys: []string{"down", "j"}, do: func(m *model, _ string) tea.Cmd { m.logs.move(1); return nil }},
	{keys: []string{"pgup"}, do: func(m *model, _ string) tea.Cmd { m.logs.move(-10); return nil }},
	{keys: []string{"pgdown"}, do: func(m *model, _ string) tea.Cmd { m.logs.move(10); return nil }},
	{keys: []string{"e"}, help: "only status ≥ 500", do: func(m *model, _ string) tea.Cmd { m.logs.errorsOnly = !m.logs.errorsOnly; return nil }},
	{keys: []string{"a"}, help: "only the selected record's API", do: func(m *model, _ string) tea.Cmd {
		v := &m.logs
		switch {
		case v.api != "":
			v.api = ""
		case v.current() != nil:
			v.api = apiName(v.current().API)
		}
		return nil
	}},
	{keys: []string{"/"}, help: "free-text filter", do: func(m *model, _ string) tea.Cmd { m.logs.editing = true; return nil }},
	{keys: []string{"c"}, help: "clear filters", do: func(m *model, _ string) tea.Cmd {
		m.logs.errorsOnly, m.logs.api, m.logs.text = false, "", ""
		return nil
	}},
	{keys: []string{"p", "space"}, help: "pause / resume", do: func(m *model, _ string) tea.Cmd { m.logs.togglePause(); return nil }},
	{keys: []string{"enter"}, help: "record details (trace id)", do: func(m *model, _ string) tea.Cmd { m.logs.detail = m.logs.current() != nil; return nil }},
	{keys: []string{"end", "G"}, help: "follow the tail again", do: func(m *model, _ string) tea.Cmd { m.logs.following = true; return nil }},
	{keys: []string{"esc"}, help: "close the details, else follow the tail", do: func(m *model, _ string) tea.Cmd {
		if m.logs.detail {
			m.logs.detail = false
		} else {
			m.logs.following = true
		}
		return nil
	}},
}}
