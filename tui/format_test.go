package tui

import (
	"testing"

	"charm.land/lipgloss/v2"
	uv "github.com/charmbracelet/ultraviolet"
)

// Each paint shows exactly the cells its lipgloss style renders: same
// characters, colours and attributes, on the lines the views style.
func TestPaintMatchesLipgloss(t *testing.T) {
	var st styles
	defs := st.defs()
	lines := []string{"x", "reload FAILED: conf.d/a.yaml:3: bad", "  GET  503  /orders/1  ", " 1 APIs ", "▁▂▃▄ ▅▆▇█", "a\tb", "日本語 ok"}
	draw := func(s string) *uv.ScreenBuffer {
		buf := uv.NewScreenBuffer(60, 1)
		uv.NewStyledString(s).Draw(buf, buf.Bounds())
		return &buf
	}
	// Plain mode's zero paint renders as the zero lipgloss style.
	defs[new(paint)] = lipgloss.Style{}
	for p, ls := range defs {
		*p = newPaint(ls)
		for _, l := range lines {
			want, got := draw(ls.Render(l)), draw(p.Render(l))
			for x := range 60 {
				if w, g := want.CellAt(x, 0), got.CellAt(x, 0); !w.Equal(g) {
					t.Errorf("style %q on %q: cell %d = %+v, lipgloss draws %+v", ls.String(), l, x, g, w)
					break
				}
			}
		}
	}
}
