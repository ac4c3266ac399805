// Package logmetrics exposes a logpipe Pipeline's counters as Prometheus
// metrics. It is a package of its own so that logpipe, which the Fluent
// Bit plugin links into Fluent Bit, does not link the Prometheus client
// (and protobuf under it): the plugin never serves metrics.
package logmetrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flexgw/flexgw/logpipe"
)

// Collector exposes Stats as Prometheus metrics (label exporter).
type Collector struct{ p *logpipe.Pipeline }

var _ prometheus.Collector = Collector{}

// New returns the pipeline's Prometheus collector.
func New(p *logpipe.Pipeline) Collector { return Collector{p: p} }

var (
	descIn      = prometheus.NewDesc("flexgw_logpipe_records_in_total", "Records accepted into the exporter's durable queue.", []string{"exporter"}, nil)
	descSent    = prometheus.NewDesc("flexgw_logpipe_sent_total", "Records the aggregator confirmed.", []string{"exporter"}, nil)
	descRetried = prometheus.NewDesc("flexgw_logpipe_retried_total", "Records in export attempts that failed and were retried.", []string{"exporter"}, nil)
	descDropped = prometheus.NewDesc("flexgw_logpipe_dropped_total", "Records lost before delivery (in-memory stage full, queue size cap).", []string{"exporter"}, nil)
	descDead    = prometheus.NewDesc("flexgw_logpipe_dead_lettered_total", "Records the aggregator refused, written to the dead-letter file.", []string{"exporter"}, nil)
	descQBytes  = prometheus.NewDesc("flexgw_logpipe_queue_bytes", "Bytes in the exporter's durable queue.", []string{"exporter"}, nil)
	descQDepth  = prometheus.NewDesc("flexgw_logpipe_queue_depth", "Records waiting in the exporter's durable queue.", []string{"exporter"}, nil)
)

// Describe implements prometheus.Collector.
func (Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descIn, descSent, descRetried, descDropped, descDead, descQBytes, descQDepth} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c Collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.p.Stats() {
		ch <- prometheus.MustNewConstMetric(descIn, prometheus.CounterValue, float64(s.RecordsIn), s.Name)
		ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, float64(s.Sent), s.Name)
		ch <- prometheus.MustNewConstMetric(descRetried, prometheus.CounterValue, float64(s.Retried), s.Name)
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(s.Dropped), s.Name)
		ch <- prometheus.MustNewConstMetric(descDead, prometheus.CounterValue, float64(s.DeadLettered), s.Name)
		ch <- prometheus.MustNewConstMetric(descQBytes, prometheus.GaugeValue, float64(s.QueueBytes), s.Name)
		ch <- prometheus.MustNewConstMetric(descQDepth, prometheus.GaugeValue, float64(s.QueueDepth), s.Name)
	}
}
