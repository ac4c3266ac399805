package cli

import (
	"fmt"
	"io"
	"strings"
)

// Man writes the man page (section 1, roff -man) of the program.
func (a *App) Man(w io.Writer, version string) {
	fmt.Fprintf(w, ".TH %s 1 \"\" %s \"User Commands\"\n", strings.ToUpper(a.Name), roffQuote(a.Name+" "+version))
	fmt.Fprintf(w, ".SH NAME\n%s \\- %s\n", a.Name, roff(a.Short))
	fmt.Fprintf(w, ".SH SYNOPSIS\n")
	for _, c := range a.visible() {
		fmt.Fprintf(w, ".B %s %s\n", a.Name, c.Name)
		if len(c.Flags()) > 0 {
			fmt.Fprintf(w, "[\\fIflags\\fR]\n")
		}
		if c.Args != "" {
			fmt.Fprintf(w, ".I %s\n", c.Args)
		}
		fmt.Fprintf(w, ".br\n")
	}
	fmt.Fprintf(w, ".SH COMMANDS\n")
	for _, c := range a.visible() {
		fmt.Fprintf(w, ".SS %s %s\n%s\n", a.Name, roff(c.Name), roff(c.Short))
		if c.Long != "" {
			for _, para := range strings.Split(strings.TrimSpace(c.Long), "\n\n") {
				fmt.Fprintf(w, ".PP\n%s\n", roff(para))
			}
		}
		for _, f := range c.Flags() {
			spec := "\\fB\\-\\-" + roff(f.Name) + "\\fR"
			if f.Short != "" {
				spec = "\\fB\\-" + f.Short + "\\fR, " + spec
			}
			if f.Arg != "" {
				spec += " \\fI" + f.Arg + "\\fR"
			}
			fmt.Fprintf(w, ".TP\n%s\n%s\n", spec, roff(flagText(f)))
		}
	}
	fmt.Fprintf(w, ".SH EXIT STATUS\n0 on success, 1 when the command failed (an invalid configuration, an unreachable gateway), 2 for a wrong invocation.\n")
	fmt.Fprintf(w, ".SH ENVIRONMENT\n.TP\n.B FLEXGW_ADMIN_TOKEN\nthe admin API bearer token, default of \\fB\\-\\-admin\\-token\\fR and \\fB\\-\\-token\\fR.\n")
	fmt.Fprintf(w, ".SH FILES\n.TP\n.I /etc/flexgw/conf.d\nthe configuration directory of the service\n.TP\n.I /etc/default/flexgw\nthe service's environment (FLEXGW_ADMIN_TOKEN, FLEXGW_OPTS)\n")
}

// roff escapes text for a roff body line.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	var b strings.Builder
	for i, line := range strings.Split(s, "\n") {
		if i > 0 {
			b.WriteByte('\n')
		}
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'") {
			b.WriteString(`\&`)
		}
		b.WriteString(line)
	}
	return b.String()
}

func roffQuote(s string) string { return `"` + strings.ReplaceAll(roff(s), `"`, `\(dq`) + `"` }
