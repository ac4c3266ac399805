// Command ansi2svg turns a terminal capture with SGR colour sequences
// (tmux capture-pane -e -p) into an SVG image of the screen, so a
// screenshot of `flexgw top` can be rendered to PNG without a display
// (rsvg-convert or ImageMagick). It understands the SGR subset terminals
// emit for text: reset, bold, faint, underline, reverse, the 16 ANSI
// colours, 256-colour and true-colour foregrounds and backgrounds.
//
//	tmux capture-pane -e -p -t top | ansi2svg > top.svg
package main

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	cellW    = 8.4 // DejaVu Sans Mono advance at 14px
	cellH    = 17.0
	fontSize = 14
	pad      = 12.0
	defaultF = "#d0d0d0"
	defaultB = "#1c1c1c"
)

// ansi16 is a dark terminal palette for colours 0-15.
var ansi16 = [16]string{
	"#1c1c1c", "#d75f5f", "#87af5f", "#d7af5f", "#5f87d7", "#af87d7", "#5fafaf", "#d0d0d0",
	"#6c6c6c", "#ff5f5f", "#afd75f", "#ffd75f", "#5fafff", "#d7afff", "#5fd7d7", "#ffffff",
}

type style struct {
	fg, bg                  string
	bold, faint, under, rev bool
}

type cell struct {
	r rune
	s style
}

func color256(n int) string {
	switch {
	case n < 16:
		return ansi16[n]
	case n < 232:
		n -= 16
		lv := []int{0, 95, 135, 175, 215, 255}
		return fmt.Sprintf("#%02x%02x%02x", lv[n/36], lv[(n/6)%6], lv[n%6])
	default:
		g := 8 + (n-232)*10
		return fmt.Sprintf("#%02x%02x%02x", g, g, g)
	}
}

// apply updates st with one SGR parameter list.
func apply(st *style, params []int) {
	if len(params) == 0 {
		params = []int{0}
	}
	for i := 0; i < len(params); i++ {
		p := params[i]
		switch {
		case p == 0:
			*st = style{}
		case p == 1:
			st.bold = true
		case p == 2:
			st.faint = true
		case p == 4:
			st.under = true
		case p == 7:
			st.rev = true
		case p == 22:
			st.bold, st.faint = false, false
		case p == 24:
			st.under = false
		case p == 27:
			st.rev = false
		case p >= 30 && p <= 37:
			st.fg = ansi16[p-30]
		case p == 39:
			st.fg = ""
		case p >= 40 && p <= 47:
			st.bg = ansi16[p-40]
		case p == 49:
			st.bg = ""
		case p >= 90 && p <= 97:
			st.fg = ansi16[p-90+8]
		case p >= 100 && p <= 107:
			st.bg = ansi16[p-100+8]
		case p == 38 || p == 48:
			var c string
			switch {
			case i+2 < len(params) && params[i+1] == 5:
				c = color256(params[i+2])
				i += 2
			case i+4 < len(params) && params[i+1] == 2:
				c = fmt.Sprintf("#%02x%02x%02x", params[i+2], params[i+3], params[i+4])
				i += 4
			}
			if p == 38 {
				st.fg = c
			} else {
				st.bg = c
			}
		}
	}
}

// parse splits a captured screen into cells.
func parse(r io.Reader) [][]cell {
	var rows [][]cell
	var st style
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var row []cell
		for i := 0; i < len(line); {
			if line[i] == 0x1b && i+1 < len(line) && line[i+1] == '[' {
				j := i + 2
				for j < len(line) && (line[j] < 0x40 || line[j] > 0x7e) {
					j++
				}
				if j < len(line) && line[j] == 'm' {
					var ps []int
					for _, f := range strings.FieldsFunc(line[i+2:j], func(r rune) bool { return r == ';' || r == ':' }) {
						n, _ := strconv.Atoi(f)
						ps = append(ps, n)
					}
					apply(&st, ps)
				}
				i = j + 1
				continue
			}
			r, n := utf8.DecodeRuneInString(line[i:])
			i += n
			row = append(row, cell{r, st})
		}
		rows = append(rows, row)
	}
	return rows
}

func main() {
	rows := parse(os.Stdin)
	cols := 0
	for _, r := range rows {
		cols = max(cols, len(r))
	}
	w := pad*2 + float64(cols)*cellW
	h := pad*2 + float64(len(rows))*cellH
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	fmt.Fprintf(out, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f">`+"\n", w, h, w, h)
	fmt.Fprintf(out, `<rect width="100%%" height="100%%" rx="8" fill="%s"/>`+"\n", defaultB)
	fmt.Fprintf(out, `<g font-family="DejaVu Sans Mono, monospace" font-size="%d" xml:space="preserve">`+"\n", fontSize)
	for y, row := range rows {
		// Runs of equal style become one rect and one text element.
		for x := 0; x < len(row); {
			s := row[x].s
			end := x
			var b strings.Builder
			for end < len(row) && row[end].s == s {
				b.WriteRune(row[end].r)
				end++
			}
			fg, bg := s.fg, s.bg
			if fg == "" {
				fg = defaultF
			}
			if s.rev {
				if bg == "" {
					bg = defaultB
				}
				fg, bg = bg, fg
			}
			px, py := pad+float64(x)*cellW, pad+float64(y)*cellH
			if bg != "" {
				fmt.Fprintf(out, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", px, py, float64(end-x)*cellW, cellH, bg)
			}
			// Block elements (sparklines) are drawn as rectangles: fonts
			// disagree on their metrics and textLength would stretch them.
			runes := []rune(b.String())
			for i, r := range runes {
				if r >= '▁' && r <= '█' {
					frac := float64(r-'▁'+1) / 8
					fmt.Fprintf(out, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n",
						px+float64(i)*cellW, py+cellH*(1-frac), cellW, cellH*frac, fg)
					runes[i] = ' '
				}
			}
			text := string(runes)
			if strings.TrimSpace(text) != "" {
				attrs := ""
				if s.bold {
					attrs += ` font-weight="bold"`
				}
				if s.faint {
					attrs += ` opacity="0.6"`
				}
				if s.under {
					attrs += ` text-decoration="underline"`
				}
				fmt.Fprintf(out, `<text x="%.1f" y="%.1f" fill="%s" textLength="%.1f"%s>%s</text>`+"\n",
					px, py+cellH-4, fg, float64(end-x)*cellW, attrs, html.EscapeString(text))
			}
			x = end
		}
	}
	fmt.Fprintln(out, "</g></svg>")
}
