package config

import (
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder walks yaml.Nodes of one resource, converting values and recording
// every problem with its line instead of stopping at the first.
type decoder struct {
	meta   *Meta
	errs   *ErrorList
	lookup func(string) (string, bool)
	// nodes counts nodes visited by the current value() call, under the
	// field valueRoot.
	nodes     int
	valueRoot string
}

func (d *decoder) errorf(n *yaml.Node, field, format string, args ...any) {
	line := d.meta.Line
	if n != nil {
		line = n.Line
	}
	*d.errs = append(*d.errs, d.meta.errorf(line, field, fmt.Sprintf(format, args...)))
}

// resolve follows aliases so *anchors behave like the value they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// isNull reports an absent or explicit null value.
func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "null"
		}
		return "a string"
	}
	return "an unsupported value"
}

// field is one key of a mapping.
type field struct {
	key   *yaml.Node
	value *yaml.Node
}

// fields returns the mapping's keys by name, reporting a non-map value,
// duplicate keys and keys not in known. A nil/null node gives an empty map.
func (d *decoder) fields(n *yaml.Node, path string, known ...string) map[string]field {
	out := map[string]field{}
	n = resolve(n)
	if isNull(n) {
		return out
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "must be a map, got %s", kindName(n))
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		name := k.Value
		if _, dup := out[name]; dup {
			d.errorf(k, join(path, name), "duplicate key")
			continue
		}
		if known != nil && !contains(known, name) {
			d.errorf(k, join(path, name), "unknown field (expected one of %s)", strings.Join(known, ", "))
			continue
		}
		out[name] = field{key: k, value: v}
	}
	return out
}

// pairs returns the mapping's entries in document order (for maps whose
// keys are user names: services, headers, parameters).
func (d *decoder) pairs(n *yaml.Node, path string) []field {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "must be a map, got %s", kindName(n))
		return nil
	}
	seen := map[string]bool{}
	var out []field
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if seen[k.Value] {
			d.errorf(k, join(path, k.Value), "duplicate key")
			continue
		}
		seen[k.Value] = true
		out = append(out, field{key: k, value: resolve(n.Content[i+1])})
	}
	return out
}

func (d *decoder) seq(n *yaml.Node, path string) []*yaml.Node {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "must be a list, got %s", kindName(n))
		return nil
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = resolve(c)
	}
	return out
}

// scalar returns the value of a scalar node with environment variables
// expanded. ok is false (and an error recorded) for non-scalars and
// missing variables.
func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	n = resolve(n)
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "must be a scalar value, got %s", kindName(n))
		return "", false
	}
	v, err := expandEnv(n.Value, d.lookup)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return "", false
	}
	return v, true
}

// str decodes a string; numbers and booleans are accepted as their text.
func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	if isNull(n) {
		return "", true
	}
	return d.scalar(n, path)
}

// raw decodes a string without environment expansion (regexes, where `$`
// is an anchor).
func (d *decoder) raw(n *yaml.Node, path string) (string, bool) {
	n = resolve(n)
	if isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "must be a string, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) integer(n *yaml.Node, path string) (int, bool) {
	s, ok := d.scalar(n, path)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		d.errorf(n, path, "must be an integer, got %q", s)
		return 0, false
	}
	return i, true
}

func (d *decoder) number(n *yaml.Node, path string) (float64, bool) {
	s, ok := d.scalar(n, path)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		d.errorf(n, path, "must be a number, got %q", s)
		return 0, false
	}
	return f, true
}

func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	s, ok := d.scalar(n, path)
	if !ok {
		return false, false
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on":
		return true, true
	case "false", "no", "off":
		return false, true
	}
	d.errorf(n, path, "must be true or false, got %q", s)
	return false, false
}

// duration accepts Go duration strings ("500ms", "15s", "1m30s") and
// integer milliseconds.
func (d *decoder) duration(n *yaml.Node, path string) (time.Duration, bool) {
	s, ok := d.scalar(n, path)
	if !ok {
		return 0, false
	}
	s = strings.TrimSpace(s)
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms < 0 {
			d.errorf(n, path, "must not be negative")
			return 0, false
		}
		return time.Duration(ms) * time.Millisecond, true
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.errorf(n, path, "must be a duration like \"500ms\" or \"15s\" or integer milliseconds, got %q", s)
		return 0, false
	}
	if v < 0 {
		d.errorf(n, path, "must not be negative")
		return 0, false
	}
	return v, true
}

// strings decodes a list of strings; a single scalar is taken as a list of one.
func (d *decoder) strList(n *yaml.Node, path string) []string {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		s, ok := d.scalar(n, path)
		if !ok {
			return nil
		}
		return []string{s}
	}
	var out []string
	for i, c := range d.seq(n, path) {
		if s, ok := d.scalar(c, fmt.Sprintf("%s[%d]", path, i)); ok {
			out = append(out, s)
		}
	}
	return out
}

// value decodes any YAML value into plain Go values (map[string]any, []any,
// string, int64, float64, bool, nil) with environment variables expanded
// in strings. A plain (unquoted) scalar that held a variable is re-typed
// after expansion, so `max: $LIMIT` with LIMIT=10 is the number 10.
func (d *decoder) value(n *yaml.Node, path string) (any, bool) {
	d.nodes, d.valueRoot = 0, path
	return d.valueAt(n, path, 0)
}

// Limits on free-form values: aliases can make a small document expand
// without end (a self-referencing anchor) or exponentially.
const (
	maxValueDepth = 64
	maxValueNodes = 100000
)

func (d *decoder) valueAt(n *yaml.Node, path string, depth int) (any, bool) {
	n = resolve(n)
	if n == nil {
		return nil, true
	}
	d.nodes++
	if depth > maxValueDepth || d.nodes > maxValueNodes {
		if d.nodes <= maxValueNodes+1 || depth == maxValueDepth+1 {
			d.errorf(n, d.valueRoot, "value nests deeper than %d levels or expands to more than %d values (a YAML alias that refers to itself?)", maxValueDepth, maxValueNodes)
		}
		d.nodes = maxValueNodes + 2
		return nil, false
	}
	switch n.Kind {
	case yaml.MappingNode:
		out := map[string]any{}
		ok := true
		for _, f := range d.pairs(n, path) {
			v, vok := d.valueAt(f.value, join(path, f.key.Value), depth+1)
			if d.nodes > maxValueNodes {
				return nil, false
			}
			ok = ok && vok
			out[f.key.Value] = v
		}
		return out, ok
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		ok := true
		for i, c := range n.Content {
			v, vok := d.valueAt(c, fmt.Sprintf("%s[%d]", path, i), depth+1)
			if d.nodes > maxValueNodes {
				return nil, false
			}
			ok = ok && vok
			out = append(out, v)
		}
		return out, ok
	case yaml.ScalarNode:
		s, ok := d.scalar(n, path)
		if !ok {
			return nil, false
		}
		tag := n.Tag
		if s != n.Value && n.Style == 0 {
			// Re-resolve the expanded text as YAML would have typed it.
			var probe yaml.Node
			if err := yaml.Unmarshal([]byte(s), &probe); err == nil && len(probe.Content) == 1 && probe.Content[0].Kind == yaml.ScalarNode {
				tag = probe.Content[0].Tag
			} else {
				tag = "!!str"
			}
		}
		return typedScalar(s, tag), true
	}
	d.errorf(n, path, "unsupported YAML value")
	return nil, false
}

func typedScalar(s, tag string) any {
	switch tag {
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if err := yaml.Unmarshal([]byte(s), &b); err == nil {
			return b
		}
	case "!!int":
		var i int64
		if err := yaml.Unmarshal([]byte(s), &i); err == nil {
			return i
		}
	case "!!float":
		var f float64
		if err := yaml.Unmarshal([]byte(s), &f); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return f
		}
	}
	return s
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`)

// expandEnv replaces $VAR and ${VAR} with the variable's value; "$$" is a
// literal "$" and a "$" not followed by a name is kept as is. A variable
// that is not set is an error naming it.
func expandEnv(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	var missing []string
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		rest := s[i+1:]
		switch {
		case rest[0] == '$':
			b.WriteByte('$')
			i++
		case rest[0] == '{':
			end := strings.IndexByte(rest, '}')
			name := ""
			if end > 0 {
				name = rest[1:end]
			}
			if end < 0 || !envName.MatchString(name) || envName.FindString(name) != name {
				return "", fmt.Errorf("malformed variable reference in %q (use ${NAME})", s)
			}
			v, ok := lookup(name)
			if !ok {
				missing = append(missing, name)
			}
			b.WriteString(v)
			i += end + 1
		default:
			name := envName.FindString(rest)
			if name == "" {
				b.WriteByte('$')
				continue
			}
			v, ok := lookup(name)
			if !ok {
				missing = append(missing, name)
			}
			b.WriteString(v)
			i += len(name)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("environment variable %s is not set", strings.Join(missing, ", "))
	}
	return b.String(), nil
}

// checkRegexp validates a rule expression the way ir compiles it. Parsing
// is the step of regexp.Compile that can fail; ir compiles the expression
// (once per distinct source) after validation.
func checkRegexp(src string) error {
	_, err := syntax.Parse("^(?:"+src+")$", syntax.Perl)
	return err
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
