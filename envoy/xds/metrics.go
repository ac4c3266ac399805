package xds

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	nacks  *prometheus.CounterVec
	pushes *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flexgw_xds_nacks_total",
			Help: "xDS responses a client rejected, by resource type (Listener, Cluster, ...).",
		}, []string{"type"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flexgw_xds_pushes_total",
			Help: "Snapshots pushed to the ADS server, by result (ok, error: translation failed and the previous snapshot kept serving).",
		}, []string{"result"}),
	}
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.nacks.Describe(ch)
	m.pushes.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.nacks.Collect(ch)
	m.pushes.Collect(ch)
}

// Collector exposes flexgw_xds_nacks_total{type} and
// flexgw_xds_pushes_total{result}; the agent registers it.
func (s *Server) Collector() prometheus.Collector { return s.metrics }
