package tui

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/mattn/go-runewidth"
)

// styles holds every style the views use. In plain mode they are all
// empty so frames are pure text; colour downsampling (NO_COLOR, 16-colour
// terminals) is left to bubbletea's renderer.
type styles struct {
	title, dim, bad, warn, good, selected, header, tabOn, tabOff, key paint
	sparkRPS, sparkP99                                                paint
}

func newStyles(plain bool) styles {
	var st styles
	if plain {
		return st
	}
	for p, ls := range st.defs() {
		*p = newPaint(ls)
	}
	return st
}

// defs pairs each style with the lipgloss style it is made from.
func (st *styles) defs() map[*paint]lipgloss.Style {
	s := lipgloss.NewStyle
	return map[*paint]lipgloss.Style{
		&st.title:    s().Bold(true),
		&st.dim:      s().Foreground(lipgloss.Color("8")),
		&st.bad:      s().Foreground(lipgloss.Color("9")).Bold(true),
		&st.warn:     s().Foreground(lipgloss.Color("11")),
		&st.good:     s().Foreground(lipgloss.Color("10")),
		&st.selected: s().Reverse(true),
		&st.header:   s().Bold(true).Underline(true),
		&st.tabOn:    s().Bold(true).Reverse(true),
		&st.tabOff:   s(),
		&st.key:      s().Bold(true).Foreground(lipgloss.Color("12")),
		&st.sparkRPS: s().Foreground(lipgloss.Color("6")),
		&st.sparkP99: s().Foreground(lipgloss.Color("5")),
	}
}

// paint is a lipgloss style reduced to the escape sequences it puts
// around one line of text. The views style dozens of lines per frame, and
// a full lipgloss render per line (padding, margins, borders) was a tenth
// of the frame's cost; wrapping a line in precomputed sequences shows the
// same cells. A style that renders differently (underlined spaces are
// styled apart) keeps its lipgloss render.
type paint struct {
	open, close string
	slow        *lipgloss.Style
}

func newPaint(st lipgloss.Style) paint {
	const probe = "x"
	out := st.Render(probe)
	i := strings.Index(out, probe)
	if i < 0 {
		return paint{slow: &st}
	}
	p := paint{open: out[:i], close: out[i+len(probe):]}
	if p.open == "" {
		return paint{}
	}
	if sample := "a b"; st.Render(sample) != p.open+sample+p.close {
		return paint{slow: &st}
	}
	return p
}

// Render wraps one line (no newline) in the style. Tabs become four
// spaces, as lipgloss renders them.
func (p paint) Render(s string) string {
	if p.slow != nil {
		return p.slow.Render(s)
	}
	if strings.IndexByte(s, '\t') >= 0 {
		s = strings.ReplaceAll(s, "\t", "    ")
	}
	if p.open == "" || s == "" {
		return s
	}
	return p.open + s + p.close
}

// column is one table column; width 0 means "takes the remaining space".
type column struct {
	title string
	width int
	right bool
}

// layout fixes flexible columns so the row fits total cells.
func layout(cols []column, total int) []column { return layoutMin(cols, total, 8) }

// layoutMin is layout for a table whose flexible column (its names) needs
// at least minFlex cells: while it would get fewer, the columns named in
// drop are given up, in that order.
func layoutMin(cols []column, total, minFlex int, drop ...string) []column {
	out := append([]column(nil), cols...)
	need := func() int {
		n := 1
		for _, c := range out {
			if c.width == 0 {
				n += minFlex
			} else {
				n += c.width + 1
			}
		}
		return n
	}
	for _, d := range drop {
		if need() <= total {
			break
		}
		for i := range out {
			if out[i].title == d {
				out = append(out[:i:i], out[i+1:]...)
				break
			}
		}
	}
	used, flex := 0, -1
	for i, c := range out {
		if c.width == 0 {
			flex = i
			continue
		}
		used += c.width + 1
	}
	if flex >= 0 {
		out[flex].width = max(total-used-1, 8)
	}
	return out
}

// row renders cells padded or truncated to their columns.
func row(cols []column, cells []string) string {
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(' ')
		}
		v := ""
		if i < len(cells) {
			v = cells[i]
		}
		b.WriteString(fit(v, c.width, c.right))
	}
	return b.String()
}

// width is the display width of s, skipping SGR and other CSI escape
// sequences. It is ansi.StringWidth without grapheme segmentation, which
// dominated frame time: the frame holds ASCII, box and block characters
// and config names, for which per-rune widths are exact.
func width(s string) int {
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == 0x1b && i+1 < len(s) && s[i+1] == '[':
			i += 2
			for i < len(s) && (s[i] < 0x40 || s[i] > 0x7e) {
				i++
			}
			i++
		case c < 0x80:
			if c >= 0x20 && c != 0x7f {
				n++
			}
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			n += runewidth.RuneWidth(r)
			i += size
		}
	}
	return n
}

// fit pads or truncates plain text s to exactly w cells. Left-aligned
// text (names, paths, addresses) is cut in the middle: names that share a
// prefix (shop/catalog-eu, shop/catalog-us) differ at their end.
func fit(s string, w int, right bool) string {
	n := width(s)
	if n > w {
		if !right && strings.IndexByte(s, 0x1b) < 0 {
			s = truncMiddle(s, w)
		} else {
			s = ansi.Truncate(s, w, "…")
		}
		n = width(s)
	}
	pad := strings.Repeat(" ", max(w-n, 0))
	if right {
		return pad + s
	}
	return s + pad
}

// clip truncates a rendered (possibly styled) line to w cells.
func clip(s string, w int) string {
	if len(s) <= w || width(s) <= w {
		return s
	}
	return ansi.Truncate(s, w, "…")
}

func fmtRPS(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 1000:
		return fmt.Sprintf("%.1f", v)
	case v < 1e6:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1fM", v/1e6)
	}
}

func fmtPct(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 99.95:
		return "100"
	case v < 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// fmtMs prints milliseconds compactly; "-" when there is no sample.
func fmtMs(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	case v < 10000:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.0fs", v/1000)
	}
}

func fmtCount(v uint64) string {
	switch {
	case v < 10000:
		return fmt.Sprint(v)
	case v < 1e6:
		return fmt.Sprintf("%.1fk", float64(v)/1e3)
	default:
		return fmt.Sprintf("%.1fM", float64(v)/1e6)
	}
}

func fmtUptime(sec float64) string {
	d := time.Duration(sec) * time.Second
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

var (
	sparkUnicode = []rune("▁▂▃▄▅▆▇█")
	sparkASCII   = []rune("_.-~=+*#")
)

// sparkline draws the last w points of v scaled to their maximum; an empty
// second is a space so idle and slow are told apart.
func sparkline(v []float64, w int, ascii bool) string {
	if w <= 0 {
		return ""
	}
	ramp := sparkUnicode
	if ascii {
		ramp = sparkASCII
	}
	if len(v) > w {
		v = v[len(v)-w:]
	}
	var peak float64
	for _, x := range v {
		peak = max(peak, x)
	}
	out := make([]rune, 0, w)
	for range w - len(v) {
		out = append(out, ' ')
	}
	for _, x := range v {
		if x <= 0 || peak == 0 {
			out = append(out, ' ')
			continue
		}
		i := int(x / peak * float64(len(ramp)-1))
		out = append(out, ramp[min(max(i, 0), len(ramp)-1)])
	}
	return string(out)
}

// truncMiddle shortens s to w cells with "…" in its middle, keeping more
// of the end (the part that tells similar names apart) than of the start.
func truncMiddle(s string, w int) string {
	if width(s) <= w {
		return s
	}
	if w <= 0 {
		return ""
	}
	if w == 1 {
		return "…"
	}
	tail := w * 3 / 5
	head := w - 1 - tail
	rs := []rune(s)
	var h, t []rune
	for i, n := 0, 0; i < len(rs); i++ {
		rw := runewidth.RuneWidth(rs[i])
		if n+rw > head {
			break
		}
		h, n = append(h, rs[i]), n+rw
	}
	for i, n := len(rs)-1, 0; i >= 0; i-- {
		rw := runewidth.RuneWidth(rs[i])
		if n+rw > tail {
			break
		}
		t, n = append(t, rs[i]), n+rw
	}
	slices.Reverse(t)
	return string(h) + "…" + string(t)
}

// pick returns the cells of the columns layout kept: cells are given in
// the order of all, the full list of column titles.
func pick(cols []column, all, cells []string) []string {
	if len(cols) == len(all) {
		return cells
	}
	out := make([]string, 0, len(cols))
	j := 0
	for i, t := range all {
		if j < len(cols) && cols[j].title == t {
			if i < len(cells) {
				out = append(out, cells[i])
			} else {
				out = append(out, "")
			}
			j++
		}
	}
	return out
}
