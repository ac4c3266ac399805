package cli

import (
	"fmt"
	"io"
	"strings"
)

// Completion writes the completion script for shell (bash, zsh or fish).
func (a *App) Completion(w io.Writer, shell string) error {
	switch shell {
	case "bash":
		a.bash(w)
	case "zsh":
		// zsh runs the bash function through its bashcompinit layer, the
		// way kubectl's first zsh completion did: one definition, no drift.
		fmt.Fprintf(w, "#compdef %s\n# zsh completion for %s: eval \"$(%s completion zsh)\" in ~/.zshrc\nautoload -U +X bashcompinit && bashcompinit\n", a.Name, a.Name, a.Name)
		a.bash(w)
	case "fish":
		a.fish(w)
	default:
		return &UsageError{Msg: fmt.Sprintf("unknown shell %q: want bash, zsh or fish", shell)}
	}
	return nil
}

func (a *App) bash(w io.Writer) {
	fn := "_" + strings.ReplaceAll(a.Name, "-", "_")
	fmt.Fprintf(w, "# bash completion for %s: source <(%s completion bash)\n", a.Name, a.Name)
	fmt.Fprintf(w, "%s() {\n", fn)
	fmt.Fprintf(w, "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\" cmd=\"\" i\n")
	fmt.Fprintf(w, "  for ((i = 1; i < COMP_CWORD; i++)); do\n    case \"${COMP_WORDS[i]}\" in -*) break ;; esac\n    cmd=\"${cmd:+$cmd }${COMP_WORDS[i]}\"\n  done\n")
	fmt.Fprintf(w, "  case \"$cmd\" in\n")
	// Partial command words: offer the next words.
	next := map[string][]string{}
	for _, c := range a.visible() {
		words := strings.Fields(c.Name)
		for i := range words {
			prefix := strings.Join(words[:i], " ")
			if !contains(next[prefix], words[i]) {
				next[prefix] = append(next[prefix], words[i])
			}
		}
	}
	for _, c := range a.visible() {
		flags := c.Flags()
		var names []string
		fmt.Fprintf(w, "  %q)\n    case \"$prev\" in\n", c.Name)
		for _, f := range flags {
			names = append(names, "--"+f.Name)
			if f.Short != "" {
				names = append(names, "-"+f.Short)
			}
			if f.Arg == "" {
				continue
			}
			pat := "--" + f.Name
			if f.Short != "" {
				pat += "|-" + f.Short
			}
			switch {
			case len(f.Values) > 0:
				fmt.Fprintf(w, "      %s) COMPREPLY=($(compgen -W %q -- \"$cur\")); return ;;\n", pat, strings.Join(f.Values, " "))
			case f.IsDir:
				fmt.Fprintf(w, "      %s) COMPREPLY=($(compgen -d -- \"$cur\")); return ;;\n", pat)
			default:
				fmt.Fprintf(w, "      %s) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n", pat)
			}
		}
		fmt.Fprintf(w, "    esac\n")
		names = append(names, "--help")
		words := next[c.Name]
		switch {
		case c.Name == "completion":
			words = append(words, "bash", "zsh", "fish")
		}
		fmt.Fprintf(w, "    if [[ \"$cur\" == -* ]]; then COMPREPLY=($(compgen -W %q -- \"$cur\"))\n", strings.Join(names, " "))
		if c.Args == "DIR" {
			fmt.Fprintf(w, "    else COMPREPLY=($(compgen -d -- \"$cur\"))\n")
		} else if len(words) > 0 {
			fmt.Fprintf(w, "    else COMPREPLY=($(compgen -W %q -- \"$cur\"))\n", strings.Join(words, " "))
		}
		fmt.Fprintf(w, "    fi ;;\n")
	}
	for prefix, words := range next {
		if a.command(prefix) != nil {
			continue
		}
		fmt.Fprintf(w, "  %q) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", prefix, strings.Join(words, " "))
	}
	fmt.Fprintf(w, "  esac\n}\ncomplete -o default -F %s %s\n", fn, a.Name)
}

func (a *App) command(name string) *Command {
	for _, c := range a.visible() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (a *App) fish(w io.Writer) {
	fmt.Fprintf(w, "# fish completion for %s: %s completion fish | source\ncomplete -c %s -f\n", a.Name, a.Name, a.Name)
	// Groups ("config" of "config dump") are offered as commands too.
	var groups []string
	for _, c := range a.visible() {
		if words := strings.Fields(c.Name); len(words) > 1 && a.command(words[0]) == nil {
			groups = appendUnique(groups, words[0])
		}
	}
	for _, g := range groups {
		fmt.Fprintf(w, "complete -c %s -n '__fish_use_subcommand' -a %s\n", a.Name, g)
	}
	for _, c := range a.visible() {
		words := strings.Fields(c.Name)
		if len(words) == 1 {
			fmt.Fprintf(w, "complete -c %s -n '__fish_use_subcommand' -a %s -d %s\n", a.Name, words[0], fishQuote(c.Short))
		} else {
			fmt.Fprintf(w, "complete -c %s -n '__fish_seen_subcommand_from %s; and not __fish_seen_subcommand_from %s' -a %s -d %s\n",
				a.Name, words[0], words[1], words[1], fishQuote(c.Short))
		}
		cond := "__fish_seen_subcommand_from " + words[len(words)-1]
		if c.Name == "completion" {
			fmt.Fprintf(w, "complete -c %s -n '%s' -a 'bash zsh fish'\n", a.Name, cond)
		}
		if c.Args == "DIR" {
			fmt.Fprintf(w, "complete -c %s -n '%s' -a '(__fish_complete_directories)'\n", a.Name, cond)
		}
		for _, f := range c.Flags() {
			line := fmt.Sprintf("complete -c %s -n '%s' -l %s", a.Name, cond, f.Name)
			if f.Short != "" {
				line += " -s " + f.Short
			}
			if f.Arg != "" {
				switch {
				case len(f.Values) > 0:
					line += " -x -a " + fishQuote(strings.Join(f.Values, " "))
				case f.IsDir:
					line += " -x -a '(__fish_complete_directories)'"
				default:
					line += " -r -F"
				}
			}
			fmt.Fprintf(w, "%s -d %s\n", line, fishQuote(f.Usage))
		}
	}
}

func appendUnique(list []string, s string) []string {
	if contains(list, s) {
		return list
	}
	return append(list, s)
}

func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
