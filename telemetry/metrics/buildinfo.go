package metrics

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
)

// BuildInfo is the flexgw_build_info gauge: always 1, with the binary's
// version, commit and Go version as labels, so a dashboard or an alert
// can tell which build each gateway runs (and spot a fleet mid-upgrade)
// by joining on it. Empty version and commit read "dev" and "unknown",
// as `flexgw version` prints them.
func BuildInfo(version, commit string) prometheus.Collector {
	if version == "" {
		version = "dev"
	}
	if commit == "" {
		commit = "unknown"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "flexgw_build_info",
		Help:        "Always 1; the labels are the running binary's version, commit and Go version.",
		ConstLabels: prometheus.Labels{"version": version, "commit": commit, "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}
