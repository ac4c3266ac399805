// Package stats re-exposes Envoy's request statistics under flexgw's metric
// names, so dashboards and `flexgw top` read the same series whichever data
// plane runs. It scrapes Envoy's admin /stats/prometheus on every collection
// and maps:
//
//	envoy_vhost_route_upstream_rq{flexgw_route, envoy_response_code_class}
//	    → flexgw_requests_total{api, route, method="ANY", code_class}
//	envoy_vhost_route_upstream_rq_time (ms)
//	    → flexgw_upstream_duration_seconds{api, route, service}
//	envoy_http_downstream_cx_active{envoy_http_conn_manager_prefix}
//	    → flexgw_active_connections{listener}
//	GET /clusters "<cluster>::<host>::health_flags::<flags>"
//	    → flexgw_upstream_endpoint_healthy{service, endpoint}
//
// Route and listener names come from the translation's RouteStats and
// ListenerStats tables (envoy/translate), never from request input.
package stats

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flexgw/flexgw/envoy/translate"
)

// MethodAny is the method label of requests counted from Envoy: Envoy's
// per-route stats are not split by method.
const MethodAny = "ANY"

// Help texts are those of the built-in data plane's metrics
// (telemetry/metrics): a registry refuses one name with two help texts.
var (
	requestsDesc = prometheus.NewDesc("flexgw_requests_total",
		"Requests served, by API, route, normalised method and status class (none = no response sent).",
		[]string{"api", "route", "method", "code_class"}, nil)
	upstreamDesc = prometheus.NewDesc("flexgw_upstream_duration_seconds",
		"Time from the upstream request start to its response headers.",
		[]string{"api", "route", "service"}, nil)
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

type routeKey struct{ api, route, service string }

type hist struct {
	buckets map[float64]uint64
	sum     float64
	count   uint64
}

// Map converts Envoy's Prometheus output to flexgw's metrics using the
// translation's name tables. Series of routes the tables do not know (a
// route removed by a reload) are dropped.
func Map(r io.Reader, res *translate.Result) ([]prometheus.Metric, error) {
	samples, err := Parse(r)
	if err != nil {
		return nil, err
	}
	var routes map[string]translate.RouteStat
	var listeners map[string]string
	if res != nil {
		routes, listeners = res.RouteStats, res.ListenerStats
	}
	routeOf := func(s Sample) (translate.RouteStat, bool) {
		prefix := s.Labels["flexgw_route"]
		if prefix == "" {
			prefix = s.Labels["envoy_route"] // Envoy's own route tag, if it extracted it
		}
		rs, ok := routes[prefix]
		return rs, ok
	}
	requests := map[[4]string]float64{}
	hists := map[routeKey]*hist{}
	conns := map[string]float64{}
	for _, s := range samples {
		switch s.Name {
		case "envoy_vhost_route_upstream_rq":
			class := s.Labels["envoy_response_code_class"]
			rs, ok := routeOf(s)
			if class == "" || !ok {
				continue
			}
			requests[[4]string{rs.API, rs.Route, MethodAny, class}] += s.Value
		case "envoy_vhost_route_upstream_rq_time_bucket", "envoy_vhost_route_upstream_rq_time_sum", "envoy_vhost_route_upstream_rq_time_count":
			rs, ok := routeOf(s)
			if !ok {
				continue
			}
			k := routeKey{rs.API, rs.Route, rs.Service}
			h := hists[k]
			if h == nil {
				h = &hist{buckets: map[float64]uint64{}}
				hists[k] = h
			}
			switch {
			case strings.HasSuffix(s.Name, "_bucket"):
				le := s.Labels["le"]
				if le == "+Inf" {
					continue
				}
				ms, err := strconv.ParseFloat(le, 64)
				if err != nil {
					return nil, fmt.Errorf("%s: le %q: %w", s.Name, le, err)
				}
				h.buckets[ms/1000] += uint64(s.Value)
			case strings.HasSuffix(s.Name, "_sum"):
				h.sum += s.Value / 1000
			default:
				h.count += uint64(s.Value)
			}
		case "envoy_http_downstream_cx_active":
			if l, ok := listeners[s.Labels["envoy_http_conn_manager_prefix"]]; ok {
				conns[l] += s.Value
			}
		}
	}
	var out []prometheus.Metric
	for _, k := range sortedKeys(requests) {
		out = append(out, prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, requests[k], k[0], k[1], k[2], k[3]))
	}
	hk := make([]routeKey, 0, len(hists))
	for k := range hists {
		hk = append(hk, k)
	}
	sort.Slice(hk, func(i, j int) bool {
		return hk[i].api+"\x00"+hk[i].route < hk[j].api+"\x00"+hk[j].route
	})
	for _, k := range hk {
		h := hists[k]
		m, err := prometheus.NewConstHistogram(upstreamDesc, h.count, h.sum, h.buckets, k.api, k.route, k.service)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	for _, l := range sortedKeys(conns) {
		out = append(out, prometheus.MustNewConstMetric(connsDesc, prometheus.GaugeValue, conns[l], l))
	}
	return out, nil
}

func sortedKeys[K interface{ ~string | ~[4]string }, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
}
