// Package cli declares flexgw's commands once — name, arguments, flags
// with their descriptions — and derives everything a user sees from that
// one declaration: the parser (stray arguments rejected, --help on stdout
// with exit 0, usage errors with exit 2), the usage text, the shell
// completions (bash, zsh, fish) and the man page. The standard library's
// flag package parses; the declaration only adds what it lacks.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Command is one (sub)command, e.g. "run" or "config dump".
type Command struct {
	// Name is the words after the program name ("config dump").
	Name string
	// Args names the positional arguments in usage ("DIR"); MinArgs and
	// MaxArgs bound their number. Anything beyond is a usage error: a
	// flag typed after a stray word would otherwise be ignored.
	Args             string
	MinArgs, MaxArgs int
	// Short is the one-line summary; Long the paragraph(s) of --help and
	// the man page.
	Short, Long string
	// Aliases maps short flag names to long ones ("o" → "output").
	Aliases map[string]string
	// Setup registers the command's flags on fs and returns the function
	// that runs it once they are parsed. Completion and the man page call
	// it only to read the flags.
	Setup func(fs *flag.FlagSet) Runner
	// Hidden commands are left out of usage and completion.
	Hidden bool
}

// Runner runs a parsed command with its positional arguments.
type Runner func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// App is the program: its name, summary and commands.
type App struct {
	Name, Short string
	Commands    []*Command
}

// UsageError is a wrong invocation: exit status 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// ExitError ends the program with Code after the command already printed
// what the user needs (validate's list of errors).
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Find returns the command named by the leading words of args and the
// rest of args.
func (a *App) Find(args []string) (*Command, []string) {
	var best *Command
	n := 0
	for _, c := range a.Commands {
		words := strings.Fields(c.Name)
		if len(words) > len(args) || len(words) <= n {
			continue
		}
		match := true
		for i, w := range words {
			if args[i] != w {
				match = false
				break
			}
		}
		if match {
			best, n = c, len(words)
		}
	}
	if best == nil {
		return nil, args
	}
	return best, args[n:]
}

// Run parses args and runs the command they name; it returns the exit
// status. Errors go to stderr once, prefixed with the command.
func (a *App) Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		a.Usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		if len(args) > 1 {
			if c, rest := a.Find(args[1:]); c != nil && len(rest) == 0 {
				c.Usage(stdout, a.Name)
				return 0
			}
		}
		a.Usage(stdout)
		return 0
	}
	c, rest := a.Find(args)
	if c == nil {
		fmt.Fprintf(stderr, "%s: unknown command %q\nRun '%s --help' for the commands.\n", a.Name, strings.Join(firstWords(args), " "), a.Name)
		return 2
	}
	prefix := a.Name + " " + c.Name
	fs := c.flagSet()
	runner := c.Setup(fs)
	var pos []string
	var err error
	if c.MaxArgs > 0 {
		pos, err = parseInterspersed(fs, rest)
	} else {
		// No arguments: the first word ends the flags, so a stray word
		// is reported as what it is, not as the flags after it.
		err = fs.Parse(rest)
		pos = fs.Args()
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.Usage(stdout, a.Name)
			return 0
		}
		// The flag package names flags with one dash; the usage shows two.
		msg := strings.NewReplacer("flag -", "flag --", "defined: -", "defined: --").Replace(err.Error())
		fmt.Fprintf(stderr, "%s: %s\nRun '%s --help' for usage.\n", prefix, msg, prefix)
		return 2
	}
	if len(pos) < c.MinArgs || len(pos) > c.MaxArgs {
		fmt.Fprintf(stderr, "%s: %s\nUsage: %s\nRun '%s --help' for usage.\n", prefix, argCountError(c, pos), c.synopsis(a.Name), prefix)
		return 2
	}
	err = runner(ctx, pos, stdout, stderr)
	var exit *ExitError
	var usage *UsageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.Code
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", prefix, err, prefix)
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", prefix, err)
		return 1
	}
}

// parseInterspersed parses flags before and after positional arguments
// (validate DIR -o json), as kubectl does; after "--" everything is
// positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func firstWords(args []string) []string {
	for i, a := range args {
		if strings.HasPrefix(a, "-") {
			return args[:i]
		}
		if i == 1 {
			return args[:2]
		}
	}
	return args
}

func argCountError(c *Command, pos []string) string {
	switch {
	case len(pos) > c.MaxArgs && c.MaxArgs == 0:
		return fmt.Sprintf("unexpected argument %q: this command takes no arguments", pos[0])
	case len(pos) > c.MaxArgs:
		return fmt.Sprintf("unexpected argument %q: want %s", pos[c.MaxArgs], c.Args)
	default:
		return fmt.Sprintf("missing %s", c.Args)
	}
}

// flagSet returns an empty set that reports errors instead of printing.
func (c *Command) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// FlagDoc is one flag as documented.
type FlagDoc struct {
	Name, Short string // "output", "o"
	Arg         string // "FORMAT"; "" for a boolean
	Usage       string
	Default     string // "" when the zero value
	Values      []string
	IsDir       bool
}

// Flags documents the command's flags, sorted by name.
func (c *Command) Flags() []FlagDoc {
	fs := c.flagSet()
	c.Setup(fs)
	short := map[string]string{}
	for s, l := range c.Aliases {
		short[l] = s
	}
	var out []FlagDoc
	fs.VisitAll(func(f *flag.Flag) {
		if _, alias := c.Aliases[f.Name]; alias {
			return
		}
		arg, usage := flag.UnquoteUsage(f)
		d := FlagDoc{Name: f.Name, Short: short[f.Name], Usage: usage}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
			d.Arg = strings.ToUpper(arg)
			if d.Arg == "" || d.Arg == "VALUE" {
				d.Arg = "VALUE"
			}
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" {
				d.Default = f.DefValue
			}
		}
		d.IsDir = d.Arg == "DIR"
		if e, ok := f.Value.(*Enum); ok {
			d.Values = e.Values
		}
		out = append(out, d)
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (c *Command) synopsis(prog string) string {
	s := prog + " " + c.Name
	if len(c.Flags()) > 0 {
		s += " [flags]"
	}
	if c.Args != "" {
		s += " " + c.Args
	}
	return s
}

// Usage writes the command's --help text.
func (c *Command) Usage(w io.Writer, prog string) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", c.synopsis(prog), c.Short)
	if c.Long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.Long))
	}
	flags := c.Flags()
	if len(flags) == 0 {
		return
	}
	fmt.Fprintf(w, "\nFlags:\n")
	rows := make([][2]string, 0, len(flags)+1)
	for _, f := range flags {
		rows = append(rows, [2]string{flagSpec(f), flagText(f)})
	}
	rows = append(rows, [2]string{"-h, --help", "show this help"})
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	for _, r := range rows {
		fmt.Fprintf(w, "  %-*s  %s\n", width, r[0], r[1])
	}
}

func flagSpec(f FlagDoc) string {
	s := "--" + f.Name
	if f.Short != "" {
		s = "-" + f.Short + ", " + s
	}
	if f.Arg != "" {
		s += " " + f.Arg
	}
	return s
}

func flagText(f FlagDoc) string {
	s := f.Usage
	if f.Default != "" {
		s += fmt.Sprintf(" (default %s)", f.Default)
	}
	return s
}

// Usage writes the program's command list.
func (a *App) Usage(w io.Writer) {
	fmt.Fprintf(w, "%s: %s\n\nUsage:\n  %s COMMAND [flags] [args]\n\nCommands:\n", a.Name, a.Short, a.Name)
	width := 0
	for _, c := range a.visible() {
		width = max(width, len(c.Name))
	}
	for _, c := range a.visible() {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.Name, c.Short)
	}
	fmt.Fprintf(w, "\nRun '%s COMMAND --help' for a command's flags.\n", a.Name)
}

func (a *App) visible() []*Command {
	var out []*Command
	for _, c := range a.Commands {
		if !c.Hidden {
			out = append(out, c)
		}
	}
	return out
}

// Enum is a string flag limited to Values; completion offers them.
type Enum struct {
	Values []string
	Value  string
}

func (e *Enum) String() string { return e.Value }

// Set accepts one of Values.
func (e *Enum) Set(s string) error {
	for _, v := range e.Values {
		if s == v {
			e.Value = s
			return nil
		}
	}
	return fmt.Errorf("must be one of %s", strings.Join(e.Values, ", "))
}

// OutputFlag registers -o/--output text|json on fs (add "o": "output" to
// the command's Aliases).
func OutputFlag(fs *flag.FlagSet) *Enum {
	e := &Enum{Values: []string{"text", "json"}, Value: "text"}
	fs.Var(e, "output", "output `FORMAT`: text or json")
	fs.Var(e, "o", "short for --output")
	return e
}
