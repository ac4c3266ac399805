package logpipe

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/flexgw/flexgw/exporters"
	"github.com/flexgw/flexgw/exporters/newrelic"
	"github.com/flexgw/flexgw/exporters/splunk"
	"github.com/flexgw/flexgw/exporters/sumologic"
	"github.com/flexgw/flexgw/ir"
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
	"http": newHTTPSumo,
}

// newHTTPSumo accepts Fluent Bit's http output only where Flex's docs use
// it: pointed at a Sumo Logic collector.
func newHTTPSumo(n string, p map[string]string, s exporters.Settings) (exporters.Exporter, error) {
	host := strings.ToLower(exporters.Normalize(p).Get("host"))
	if !strings.HasSuffix(host, ".sumologic.com") && !strings.HasSuffix(host, ".sumologic.net") {
		return nil, fmt.Errorf("parameter %q: %q is not a Sumo Logic collector; the http type is supported only for Sumo Logic HTTP sources (use type splunk, newrelic or sumologic otherwise)", "host", host)
	}
	return sumologic.New(n, p, s)
}

// Types lists the accepted output types.
func Types() []string {
	return []string{"http", "newrelic", "nrlogs", "splunk", "sumologic"}
}

// NewExporter builds the exporter for one output.
func NewExporter(o ir.LogOutput, s exporters.Settings) (exporters.Exporter, error) {
	f, ok := factories[strings.ToLower(o.Type)]
	if !ok {
		return nil, fmt.Errorf("type %q is not supported (use one of %s)", o.Type, strings.Join(Types(), ", "))
	}
	return f(o.Name, o.Parameters, s)
}

// Validate checks Configuration.spec.logging: output names, types and
// parameters, the accessLogs/runtimeLogs output references and the
// runtime log level. Errors name the output and the parameter.
func Validate(l *ir.Logging) error {
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
func routes(l *ir.Logging) (access, runtime map[string]bool) {
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
	case "sumologic", "http":
		return sumologic.Keys
	}
	return nil
}

// PluginName is the name the Fluent Bit output plugin registers.
const PluginName = "flexgw"
