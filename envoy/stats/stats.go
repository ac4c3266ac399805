// Package stats re-exposes what only Envoy's own statistics know under
// flexgw's metric names, so dashboards and `flexgw top` read the same series
// whichever data plane runs. It scrapes Envoy's admin endpoints on every
// collection and maps:
//
//	envoy_http_downstream_cx_active{envoy_http_conn_manager_prefix}
//	    → flexgw_active_connections{listener}
//	GET /clusters "<cluster>::<host>::health_flags::<flags>"
//	    → flexgw_upstream_endpoint_healthy{service, endpoint}
//	(the scrape itself) → flexgw_envoy_stats_up
//
// The per-request metrics (flexgw_requests_total, the request, upstream
// and overhead histograms, request/response sizes, policy decisions) are
// not taken from Envoy's stats: the agent counts them from Envoy's access
// log with telemetry/metrics.ObserveRecord, exactly as the built-in data
// plane's hooks count them, with the real method and total time that
// Envoy's per-route stats lack. Mapping Envoy's per-route counters too
// would give one series two sources, and the registry refuses a scrape
// with a series collected twice; so envoy_vhost_route_upstream_rq* are
// deliberately ignored.
//
// Listener names come from the translation's ListenerStats table and
// service names from its clusters (envoy/translate), never from request
// input.
package stats

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flexgw/flexgw/envoy/translate"
)

// Help texts are those of the built-in data plane's metrics
// (telemetry/metrics): a registry refuses one name with two help texts.
var (
	connsDesc = prometheus.NewDesc("flexgw_active_connections",
		"Open downstream connections per listener.",
		[]string{"listener"}, nil)
	upDesc = prometheus.NewDesc("flexgw_envoy_stats_up",
		"1 when the last scrape of Envoy's admin /stats/prometheus succeeded.",
		nil, nil)
)

// Names supplies the current translation's name tables; xds.Server.Result
// is one.
type Names func() *translate.Result

// Options configure a Collector.
type Options struct {
	// AdminAddr is Envoy's admin host:port.
	AdminAddr string
	// Names returns the translation whose tables map stat names back to
	// config names; nil or a nil result maps nothing.
	Names Names
	// Timeout bounds one scrape of Envoy; default 2s.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Collector is a prometheus.Collector that scrapes Envoy when collected.
// It is unchecked (Describe sends nothing) because its series follow the
// configuration.
type Collector struct {
	opts   Options
	client *http.Client
	log    *slog.Logger
}

// NewCollector returns a collector for the Envoy at opts.AdminAddr.
func NewCollector(opts Options) *Collector {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Collector{opts: opts, client: &http.Client{Timeout: opts.Timeout}, log: log.With("component", "envoy-stats")}
}

// Describe implements prometheus.Collector (unchecked).
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect scrapes Envoy and sends the mapped metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ms, err := c.scrape()
	up := 1.0
	if err != nil {
		up = 0
		c.log.Warn("scraping envoy stats failed", "admin", c.opts.AdminAddr, "err", err)
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up)
	for _, m := range ms {
		ch <- m
	}
}

func (c *Collector) scrape() ([]prometheus.Metric, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.opts.AdminAddr+"/stats/prometheus", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /stats/prometheus: %s", resp.Status)
	}
	var res *translate.Result
	if c.opts.Names != nil {
		res = c.opts.Names()
	}
	out, err := Map(resp.Body, res)
	if err != nil {
		return nil, err
	}
	health, err := c.get(ctx, "/clusters", func(r io.Reader) ([]prometheus.Metric, error) { return MapClusters(r, res) })
	if err != nil {
		return out, err
	}
	return append(out, health...), nil
}

func (c *Collector) get(ctx context.Context, path string, mapper func(io.Reader) ([]prometheus.Metric, error)) ([]prometheus.Metric, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.opts.AdminAddr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return mapper(resp.Body)
}

// Map converts Envoy's Prometheus output to the flexgw metrics only Envoy
// knows (active downstream connections per listener), using the
// translation's name tables. Series of listeners the tables do not know
// (Envoy's admin listener, one removed by a reload) are dropped, and so is
// everything per request, which comes from the access log instead.
func Map(r io.Reader, res *translate.Result) ([]prometheus.Metric, error) {
	samples, err := parseFamilies(r, func(name []byte) bool { return string(name) == "envoy_http_downstream_cx_active" })
	if err != nil {
		return nil, err
	}
	var listeners map[string]string
	if res != nil {
		listeners = res.ListenerStats
	}
	conns := map[string]float64{}
	for _, s := range samples {
		if l, ok := listeners[s.Labels["envoy_http_conn_manager_prefix"]]; ok {
			conns[l] += s.Value
		}
	}
	names := make([]string, 0, len(conns))
	for l := range conns {
		names = append(names, l)
	}
	sort.Strings(names)
	out := make([]prometheus.Metric, 0, len(names))
	for _, l := range names {
		out = append(out, prometheus.MustNewConstMetric(connsDesc, prometheus.GaugeValue, conns[l], l))
	}
	return out, nil
}
