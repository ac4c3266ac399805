package logpipe

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/flexgw/flexgw/exporters"
	"github.com/flexgw/flexgw/exporters/file"
	"github.com/flexgw/flexgw/exporters/httpout"
	"github.com/flexgw/flexgw/exporters/newrelic"
	"github.com/flexgw/flexgw/exporters/splunk"
	"github.com/flexgw/flexgw/exporters/stdout"
	"github.com/flexgw/flexgw/exporters/sumologic"
	"github.com/flexgw/flexgw/ir/irlog"
)

// factory builds an exporter from an output's parameters without I/O.
type factory func(name string, params map[string]string, s exporters.Settings) (exporters.Exporter, error)

// factories maps Flex output types (and the Fluent Bit aliases Flex
// documents) to exporters. Adding an exporter is one line here.
var factories = map[string]factory{
	"splunk": func(n string, p map[string]string, s exporters.Settings) (exporters.Exporter, error) {
		return splunk.New(n, p, s)
	},
	"newrelic": func(n string, p map[string]string, s exporters.Settings) (exporters.Exporter, error) {
		return newrelic.New(n, p, s)
	},
	"nrlogs": func(n string, p map[string]string, s exporters.Settings) (exporters.Exporter, error) {
		return newrelic.New(n, p, s)
	},
	"sumologic": func(n string, p map[string]string, s exporters.Settings) (exporters.Exporter, error) {
		return sumologic.New(n, p, s)
	},
	"http": newHTTP,
	"file": func(n string, p map[string]string, s exporters.Settings) (exporters.Exporter, error) {
		return file.New(n, p, s)
	},
	"stdout": func(n string, p map[string]string, s exporters.Settings) (exporters.Exporter, error) {
		return stdout.New(n, p, s)
	},
}

// newHTTP is Fluent Bit's generic http output, except pointed at a Sumo
// Logic collector (Flex's HTTP example), where the Sumo Logic exporter adds
// the source's metadata headers.
func newHTTP(n string, p map[string]string, s exporters.Settings) (exporters.Exporter, error) {
	if isSumo(p) {
		return sumologic.New(n, p, s)
	}
	return httpout.New(n, p, s)
}

func isSumo(p map[string]string) bool {
	host := strings.ToLower(exporters.Normalize(p).Get("host"))
	return strings.HasSuffix(host, ".sumologic.com") || strings.HasSuffix(host, ".sumologic.net")
}

// Types lists the accepted output types. Flex passes any Fluent Bit output
// through; these are the ones flexgw implements (in process and, under
// Fluent Bit, as Fluent Bit's own outputs or flexgw's plugin).
func Types() []string {
	return []string{"file", "http", "newrelic", "nrlogs", "splunk", "stdout", "sumologic"}
}

// NewExporter builds the exporter for one output.
func NewExporter(o irlog.LogOutput, s exporters.Settings) (exporters.Exporter, error) {
	f, ok := factories[strings.ToLower(o.Type)]
	if !ok {
		return nil, fmt.Errorf("type %q is not supported: flexgw implements the Fluent Bit outputs %s", o.Type, strings.Join(Types(), ", "))
	}
	return f(o.Name, o.Parameters, s)
}

// Validate checks Configuration.spec.logging: output names, types and
// parameters, the accessLogs/runtimeLogs output references and the
// runtime log level. Errors name the output and the parameter.
func Validate(l *irlog.Logging) error {
	if l == nil {
		return nil
	}
	var errs []error
	seen := map[string]bool{}
	for i, o := range l.Outputs {
		// FILE:LINE: Kind/name: field: reason, as every config error.
		where := fmt.Sprintf("spec.logging.outputs[%d]", i)
		if o.Source.Kind != "" && o.Source.Name != "" {
			_, name, _ := strings.Cut(o.Source.Name, "/") // "namespace/name"
			if name == "" {
				name = o.Source.Name
			}
			where = o.Source.Kind + "/" + name + ": " + where
		}
		if o.Source.File != "" {
			where = o.Source.String() + ": " + where
		}
		if o.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is required", where))
			continue
		}
		if seen[o.Name] {
			errs = append(errs, fmt.Errorf("%s: duplicate output name %q", where, o.Name))
		}
		seen[o.Name] = true
		if _, err := NewExporter(o, exporters.Settings{}); err != nil {
			errs = append(errs, fmt.Errorf("%s: output %q (type %s): %w", where, o.Name, o.Type, err))
		}
	}
	for _, ref := range []struct {
		field string
		names []string
	}{{"spec.logging.accessLogs.outputs", l.AccessLogOutputs}, {"spec.logging.runtimeLogs.outputs", l.RuntimeLogOutputs}} {
		for _, n := range ref.names {
			if !seen[n] {
				errs = append(errs, fmt.Errorf("%s: %q is not a name in spec.logging.outputs", ref.field, n))
			}
		}
	}
	if _, err := ParseLevel(l.RuntimeLogLevel); err != nil {
		errs = append(errs, fmt.Errorf("spec.logging.runtimeLogs.logLevel: %w", err))
	}
	return errors.Join(errs...)
}

// ParseLevel reads Flex's runtime log levels ("" is info).
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "trace", "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "fatal", "critical":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("%q is not a level (use debug, info, warn or error)", s)
}

// routes resolves which outputs get which stream. With no accessLogs and
// no runtimeLogs outputs listed, access logs go to every output and
// runtime logs to none.
func routes(l *irlog.Logging) (access, runtime map[string]bool) {
	access, runtime = map[string]bool{}, map[string]bool{}
	if l == nil {
		return
	}
	for _, n := range l.AccessLogOutputs {
		access[n] = true
	}
	for _, n := range l.RuntimeLogOutputs {
		runtime[n] = true
	}
	if len(access) == 0 && len(runtime) == 0 {
		for _, o := range l.Outputs {
			access[o.Name] = true
		}
	}
	return
}

// ParamKeys lists the parameters an output type accepts besides
// exporters.CommonKeys (the Fluent Bit plugin passes these through as
// "Param.<key>").
func ParamKeys(typ string) []string {
	switch strings.ToLower(typ) {
	case "splunk":
		return splunk.Keys
	case "newrelic", "nrlogs":
		return newrelic.Keys
	case "sumologic":
		return sumologic.Keys
	case "http":
		return union(httpout.Keys, sumologic.Keys)
	case "file":
		return file.Keys
	case "stdout":
		return stdout.Keys
	}
	return nil
}

// NativeFluentBit returns the Fluent Bit output that serves o when the
// agent runs Fluent Bit ("" when flexgw's plugin does): file and stdout,
// and http unless pointed at Sumo Logic. These write or send exactly what
// Fluent Bit would, so Fluent Bit's own implementation is the reference.
func NativeFluentBit(o irlog.LogOutput) string {
	switch t := strings.ToLower(o.Type); t {
	case "file", "stdout":
		return t
	case "http":
		if !isSumo(o.Parameters) {
			return t
		}
	}
	return ""
}

// PluginName is the name the Fluent Bit output plugin registers.
const PluginName = "flexgw"
