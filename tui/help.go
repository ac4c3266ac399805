package tui

// helpText is the `?` overlay, one binding a line.
var helpText = []string{
	"flexgw top — keys",
	"",
	"  tab / shift+tab, 1-4   switch view (APIs, Upstreams, Logs, Pipeline); click a tab",
	"  ↑↓ j k, pgup pgdn      move the selection; mouse wheel scrolls, click selects",
	"  ?                      this help        q, ctrl+c   quit",
	"",
	"APIs",
	"  s / S                  sort by the next / previous column; r reverses; click a heading",
	"  /                      filter by name (enter keeps it, esc clears it)",
	"  space, →               expand or collapse the API's routes and services; E all",
	"  enter                  drill into the API; esc goes back",
	"",
	"Logs",
	"  e                      only status ≥ 500      a   only the selected record's API",
	"  /                      free-text filter        c   clear filters",
	"  p, space               pause / resume          enter   record details (trace id)",
	"  end, G                 follow the tail again",
	"",
	"Rates and percentiles are computed by the gateway over its window (header);",
	"sparklines show one point per second. NO_COLOR is honoured; --plain prints text frames.",
}

func (m *model) helpLines() []string {
	out := make([]string, 0, len(helpText))
	for i, l := range helpText {
		if i == 0 || l == "APIs" || l == "Logs" {
			l = m.st.title.Render(l)
		}
		out = append(out, l)
	}
	return out
}
