package logpipe

import (
	"slices"
	"strings"

	"github.com/flexgw/flexgw/exporters/file"
	"github.com/flexgw/flexgw/exporters/httpout"
	"github.com/flexgw/flexgw/exporters/newrelic"
	"github.com/flexgw/flexgw/exporters/splunk"
	"github.com/flexgw/flexgw/exporters/stdout"
	"github.com/flexgw/flexgw/exporters/sumologic"
)

// secretParams maps every output type of Types to the parameters whose
// values must never leave the process (admin API, logs, errors). Each
// exporter declares its own beside its parameter parsing; a type missing
// here fails TestEveryOutputDeclaresItsSecrets (agent), and RedactParams
// hides every parameter of it meanwhile.
var secretParams = map[string][]string{
	"splunk":    splunk.SecretParams,
	"newrelic":  newrelic.SecretParams,
	"nrlogs":    newrelic.SecretParams,
	"sumologic": sumologic.SecretParams,
	"http":      union(sumologic.SecretParams, httpout.SecretParams), // Sumo Logic sources or generic
	"file":      file.SecretParams,
	"stdout":    stdout.SecretParams,
}

func union(a, b []string) []string {
	out := append([]string{}, a...)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// SecretParams returns the secret parameter names (lowercase) of output
// type typ, and whether the type declares them.
func SecretParams(typ string) ([]string, bool) {
	p, ok := secretParams[strings.ToLower(typ)]
	return p, ok
}

// RedactParams returns a copy of an output's parameters with secret values
// replaced by "[redacted]"; for a type that declares nothing, every value.
// Keys match case-insensitively, as Fluent Bit's do.
func RedactParams(typ string, params map[string]string) map[string]string {
	secret, declared := SecretParams(typ)
	out := make(map[string]string, len(params))
	for k, v := range params {
		key := strings.ToLower(strings.TrimSpace(k))
		hide := !declared
		for _, s := range secret {
			if key == s {
				hide = true
			}
		}
		if hide {
			v = "[redacted]"
		}
		out[k] = v
	}
	return out
}
