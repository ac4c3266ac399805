// Package fluentbit renders the Fluent Bit configuration the agent runs
// when Envoy is the data plane and fluent-bit is installed (a tail input
// on Envoy's JSON access log with an offsets DB and filesystem buffering,
// flexgw's Go output plugin as the output), and supervises the process.
package fluentbit

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/logpipe"
)

// Config is everything Render needs. Paths must be absolute.
type Config struct {
	// AccessLogPath is Envoy's JSON access log (the tail input's Path).
	AccessLogPath string
	// StateDir holds the tail offsets DB and Fluent Bit's filesystem
	// storage, so a restart neither re-reads nor loses lines.
	StateDir string
	// PluginPath is out_flexgw.so.
	PluginPath string
	// QueueDir is the plugin's directory root (its dead-letter files;
	// the rendered config buffers in Fluent Bit's storage, not in a
	// queue of the plugin's).
	QueueDir string
	// GatewayID is added to records lacking one.
	GatewayID string
	// LogLevel is Fluent Bit's own log level (default info).
	LogLevel string
	// HTTPPort, when non-zero, enables Fluent Bit's monitoring server on
	// 127.0.0.1 (health checks by the supervisor).
	HTTPPort int
	// Logging is the Flex logging config; its access-log outputs become
	// plugin outputs.
	Logging *ir.Logging
}

// Files are the rendered configuration files.
type Files struct {
	// Main is fluent-bit.conf (classic format).
	Main []byte
	// Plugins is plugins.conf, which Main names in plugins_file.
	Plugins []byte
	// Parsers is parsers.conf (ParsersPath of the plugins file), which
	// Main names in parsers_file: the JSON parser native outputs need.
	Parsers []byte
}

// ParsersPath is where parsers.conf goes: beside plugins.conf.
func ParsersPath(pluginsFile string) string {
	return filepath.Join(filepath.Dir(pluginsFile), "parsers.conf")
}

// JSONParser is the parser that turns an access-log line into the record.
const JSONParser = "flexgw_json"

// Tag is the tag of the access-log stream.
const Tag = "flexgw.access"

// Render produces the configuration; it is pure. Outputs are rendered in
// config order. Splunk, New Relic and Sumo Logic outputs go through
// flexgw's plugin (a chunk delivered before Fluent Bit deletes it,
// per-request retries), every parameter passed as Param.<key>; file,
// stdout and generic http outputs are Fluent Bit's own, with the
// parameters as written.
func Render(c Config, pluginsFile string) (Files, error) {
	for name, p := range map[string]string{"AccessLogPath": c.AccessLogPath, "StateDir": c.StateDir, "PluginPath": c.PluginPath, "QueueDir": c.QueueDir} {
		if !filepath.IsAbs(p) {
			return Files{}, fmt.Errorf("fluentbit: %s %q must be an absolute path", name, p)
		}
	}
	if err := logpipe.Validate(c.Logging); err != nil {
		return Files{}, err
	}
	if c.Logging == nil {
		return Files{}, errors.New("fluentbit: no logging outputs configured")
	}
	level := c.LogLevel
	if level == "" {
		level = "info"
	}
	var b strings.Builder
	kv := func(k, v string) { fmt.Fprintf(&b, "    %-24s %s\n", k, v) }
	b.WriteString("# Rendered by flexgw; edits are overwritten.\n[SERVICE]\n")
	kv("Flush", "1")
	kv("Daemon", "Off")
	kv("Log_Level", level)
	kv("plugins_file", pluginsFile)
	kv("parsers_file", ParsersPath(pluginsFile))
	kv("storage.path", filepath.Join(c.StateDir, "storage"))
	// Durable across SIGKILL (TestRenderedConfigSurvivesSIGKILL): chunks
	// are mmap'd files, so what Fluent Bit appended is in the page cache
	// the moment it returns, kill or not. With storage.checksum On, the
	// chunk being written at a kill carries a stale CRC and is discarded
	// on restart ("format check failed") while the tail offset is already
	// past its lines: measured 1,400 of 12,000 records lost over two
	// kills. Off recovers every chunk. storage.sync full (msync per
	// write) and DB.sync full guard against power loss, not a killed
	// process, at a large I/O cost; normal keeps both cheap.
	kv("storage.sync", "normal")
	kv("storage.checksum", "Off")
	kv("storage.backlog.mem_limit", "16M")
	// The plugin hands a chunk it could not deliver within its
	// Retry_Window back to Fluent Bit (FLB_RETRY); Fluent Bit's default
	// cap on the wait before the next try is 2000 s.
	kv("scheduler.base", "1")
	kv("scheduler.cap", "30")
	if c.HTTPPort > 0 {
		kv("HTTP_Server", "On")
		kv("HTTP_Listen", "127.0.0.1")
		kv("HTTP_Port", fmt.Sprint(c.HTTPPort))
		kv("Health_Check", "On")
	}
	b.WriteString("\n[INPUT]\n")
	kv("Name", "tail")
	kv("Tag", Tag)
	kv("Path", c.AccessLogPath)
	kv("DB", filepath.Join(c.StateDir, "tail.db"))
	kv("DB.sync", "normal")
	kv("DB.locking", "true")
	kv("Read_from_Head", "true")
	kv("Refresh_Interval", "5")
	kv("Rotate_Wait", "30")
	kv("Skip_Long_Lines", "On")
	kv("Buffer_Max_Size", "1M")
	kv("Mem_Buf_Limit", "32M")
	kv("storage.type", "filesystem")

	access := map[string]bool{}
	for _, n := range c.Logging.AccessLogOutputs {
		access[n] = true
	}
	for _, o := range c.Logging.Outputs {
		if (len(access) == 0 || access[o.Name]) && logpipe.NativeFluentBit(o) != "" {
			// Fluent Bit's own outputs write the record they get: parse
			// the line into its fields first (the plugin decodes either).
			b.WriteString("\n[FILTER]\n")
			kv("Name", "parser")
			kv("Match", Tag)
			kv("Key_Name", "log")
			kv("Parser", JSONParser)
			break
		}
	}
	n := 0
	for _, o := range c.Logging.Outputs {
		if len(access) > 0 && !access[o.Name] {
			continue
		}
		n++
		b.WriteString("\n[OUTPUT]\n")
		if native := logpipe.NativeFluentBit(o); native != "" {
			// Fluent Bit's own output: its parameters are Fluent Bit's,
			// passed as written; a list (header) is one line per item.
			kv("Name", native)
			kv("Match", Tag)
			kv("Alias", o.Name)
			kv("Retry_Limit", "False")
			for _, k := range sortedKeys(o.Parameters) {
				// A YAML block scalar (Flex's template: |) ends in a newline.
				for _, v := range strings.Split(strings.TrimRight(o.Parameters[k], "\n"), "\n") {
					if strings.ContainsRune(v, '\r') {
						return Files{}, fmt.Errorf("fluentbit: output %q parameter %q: value spans lines", o.Name, k)
					}
					kv(k, v)
				}
			}
			continue
		}
		kv("Name", logpipe.PluginName)
		kv("Match", Tag)
		kv("Alias", o.Name)
		kv("Retry_Limit", "False")
		// Fluent Bit's filesystem storage is the buffer: the plugin
		// returns FLB_OK only once the aggregator confirmed the chunk,
		// so a second durable copy in the plugin's own queue would only
		// cost CPU (docs/logging.md). A flush waits for the aggregator,
		// so it runs in a worker thread, not Fluent Bit's engine thread.
		kv("Buffer", "fluentbit")
		kv("Workers", "1")
		kv("Exporter", strings.ToLower(o.Type))
		kv("Output_Name", o.Name)
		kv("Queue_Dir", c.QueueDir)
		if c.GatewayID != "" {
			kv("Gateway_ID", c.GatewayID)
		}
		for _, k := range sortedKeys(o.Parameters) {
			v := o.Parameters[k]
			if strings.ContainsAny(v, "\n\r") {
				return Files{}, fmt.Errorf("fluentbit: output %q parameter %q: value spans lines", o.Name, k)
			}
			kv("Param."+strings.ToLower(k), v)
		}
	}
	if n == 0 {
		return Files{}, errors.New("fluentbit: no access-log outputs configured")
	}
	plugins := fmt.Sprintf("[PLUGINS]\n    Path %s\n", c.PluginPath)
	parsers := "[PARSER]\n    Name   " + JSONParser + "\n    Format json\n"
	return Files{Main: []byte(b.String()), Plugins: []byte(plugins), Parsers: []byte(parsers)}, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
