package tui

// helpNotes close the `?` overlay, below the keymaps (keys.go).
var helpNotes = []string{
	sharedMark + " after an upstream endpoint: other endpoints resolve to its address, so its kernel numbers include theirs.",
	"Rates and percentiles are computed by the gateway over its window (header);",
	"sparklines show one point per second. NO_COLOR is honoured; --plain prints text frames.",
}

// helpLines is the `?` overlay: the global keys, then each view's, from the
// same tables that dispatch them.
func (m *model) helpLines() []string {
	out := []string{m.st.title.Render("flexgw top — keys"), ""}
	out = append(out, globalKeys.helpLines()...)
	for _, km := range []*keymap{&apiKeys, &logKeys} {
		out = append(out, "", m.st.title.Render(km.title))
		out = append(out, km.helpLines()...)
	}
	return append(append(out, ""), helpNotes...)
}
