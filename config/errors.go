package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in the configuration, located at a file and line and
// naming the resource and field it concerns. Empty parts are omitted from
// the message.
type Error struct {
	File   string
	Line   int
	Kind   string
	Name   string
	Field  string
	Reason string
}

// Error renders "FILE:LINE: Kind/name: field: reason".
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	switch {
	case e.Kind != "" && e.Name != "":
		b.WriteString(e.Kind + "/" + e.Name + ": ")
	case e.Kind != "":
		b.WriteString(e.Kind + ": ")
	case e.Name != "":
		b.WriteString(e.Name + ": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// ErrorList is every problem found in a configuration, sorted by file then
// line. It implements error with one problem per line.
type ErrorList []*Error

// Error joins the problems, one per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Sort orders the list by file, then line, then message, so output is
// stable whatever order the checks ran in.
func (l ErrorList) Sort() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Error() < b.Error()
	})
}

// Err returns the list as an error, or nil when it is empty.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	l.Sort()
	return l
}
