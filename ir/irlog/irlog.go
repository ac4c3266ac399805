// Package irlog holds the compiled logging configuration
// (Configuration.spec.logging) and the Source that locates it, as a leaf
// package with no dependencies. The ir package re-exports these types
// under its own names; log shipping (logpipe, and the Fluent Bit plugin
// linked into Fluent Bit) imports this package, so it does not link the
// config parser and its YAML library.
package irlog

import "strconv"

// Logging is Configuration.spec.logging.
type Logging struct {
	Outputs           []LogOutput `json:"outputs,omitempty"`
	AccessLogOutputs  []string    `json:"accessLogOutputs,omitempty"`
	RuntimeLogOutputs []string    `json:"runtimeLogOutputs,omitempty"`
	RuntimeLogLevel   string      `json:"runtimeLogLevel,omitempty"`
}

// LogOutput is one named output (Fluent Bit output type and parameters,
// every scalar parameter rendered as a string as Fluent Bit sees it).
type LogOutput struct {
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Parameters map[string]string `json:"parameters,omitempty"`
	Source     Source            `json:"source"`
}

// Source locates a resource in the config directory for error messages.
type Source struct {
	File string `json:"file"`
	Line int    `json:"line"`
	// Kind and Name identify the resource ("ApiInstance", "ns/name").
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// String is "file:line".
func (s Source) String() string { return s.File + ":" + strconv.Itoa(s.Line) }
