package dashboards

import (
	"fmt"
	"strings"
)

// ri is Grafana's rate interval: at least four scrape intervals, so a
// rate never spans fewer than two samples whatever the dashboard's range.
const ri = "[$__rate_interval]"

// rate is sum by (by) (rate(metric{sel}[$__rate_interval])).
func rate(metric, sel, by string) string {
	return fmt.Sprintf("sum by (%s) (rate(%s%s%s))", by, metric, braces(sel), ri)
}

// total is sum(rate(...)) without grouping.
func total(metric, sel string) string {
	return fmt.Sprintf("sum(rate(%s%s%s))", metric, braces(sel), ri)
}

// quantile is the q-quantile of a histogram, grouped by by.
func quantile(q float64, hist, sel, by string) string {
	g := "le"
	if by != "" {
		g = "le, " + by
	}
	return fmt.Sprintf("histogram_quantile(%g, sum by (%s) (rate(%s_bucket%s%s)))", q, g, hist, braces(sel), ri)
}

// ratio is the share of numerator selector in all requests, by by.
func ratio(metric, numSel, sel, by string) string {
	num := strings.Trim(strings.Join([]string{sel, numSel}, ", "), ", ")
	if by == "" {
		return fmt.Sprintf("%s / %s", total(metric, num), total(metric, sel))
	}
	return fmt.Sprintf("%s / %s", rate(metric, num, by), rate(metric, sel, by))
}

// gauge smooths a gauge over the rate interval (max keeps spikes visible).
func gauge(fn, metric, sel, by string) string {
	return fmt.Sprintf("%s by (%s) (max_over_time(%s%s%s))", fn, by, metric, braces(sel), ri)
}

// increase is sum by (by) (increase(metric{sel}[$__rate_interval])): events
// per interval, for counters that move rarely (reloads, pushes).
func increase(metric, sel, by string) string {
	return fmt.Sprintf("sum by (%s) (increase(%s%s%s))", by, metric, braces(sel), ri)
}

// braces is the selector of every query: the gateways picked by the job
// and instance variables, then sel. A query without them would sum every
// gateway Prometheus scrapes into a panel that reads as "this gateway".
func braces(sel string) string {
	if sel == "" {
		return "{" + gateway + "}"
	}
	return "{" + gateway + ", " + sel + "}"
}

// gateway selects the gateways the job and instance variables pick.
const gateway = `job=~"$job", instance=~"$instance"`

// gatewayVars are the first variables of every dashboard: the Prometheus
// job, then the instances (gateways) in it. Every other variable and every
// query is filtered by both.
var gatewayVars = []variable{
	{name: "job", label: "Job", query: "label_values(flexgw_snapshot_info, job)", multi: true, allValue: ".+"},
	{name: "instance", label: "Instance", query: `label_values(flexgw_snapshot_info{job=~"$job"}, instance)`, multi: true, allValue: ".+"},
}

// labelValues is a variable query for label's values on metric, among the
// selected gateways (and sel).
func labelValues(metric, sel, label string) string {
	return fmt.Sprintf("label_values(%s%s, %s)", metric, braces(sel), label)
}

// Why a panel shows no data: the parts that are off unless configured.
const (
	offEnvoy = " No data with the built-in data plane: these series exist only when flexgw runs Envoy (flexgw run --dataplane envoy or xds)."
	offRedis = " No data until a Configuration sets spec.sharedStorage.redis (no policy shares state across replicas without it)."
	offEBPF  = " No data when the kernel probe is off (flexgw run --ebpf off, or a kernel without BTF / the needed capabilities)."
)

const (
	apiSel     = `api=~"$api"`
	apiRoute   = `api=~"$api", route=~"$route"`
	serviceSel = `service=~"$service"`
	expSel     = `exporter=~"$exporter"`
	fiveXX     = `code_class="5xx"`
)

func definitions() []dashboard {
	return []dashboard{overview(), apiDrilldown(), upstreams(), logPipeline()}
}

func overview() dashboard {
	return dashboard{
		file: "flexgw-overview.json", uid: "flexgw-overview", title: "flexgw / Gateway overview",
		description: "Traffic, errors and latency of the whole gateway, config reloads and the gateway process.",
		rows: []row{
			{title: "Golden signals", panels: []panel{
				{title: "Requests per second", kind: "stat", w: 6, h: 5, unit: "reqps",
					description: "Requests served per second by every API of this gateway.",
					targets:     []target{{expr: total("flexgw_requests_total", ""), legend: "rps"}}},
				{title: "5xx ratio", kind: "stat", w: 6, h: 5, unit: "percentunit", min: f64(0), max: f64(1),
					description: "Share of requests answered with a 5xx status (from the gateway or the upstream).",
					targets:     []target{{expr: ratio("flexgw_requests_total", fiveXX, "", ""), legend: "5xx"}}},
				{title: "p99 latency", kind: "stat", w: 6, h: 5, unit: "s",
					description: "99th percentile of total request time, first byte received to last byte sent.",
					targets:     []target{{expr: quantile(0.99, "flexgw_request_duration_seconds", "", ""), legend: "p99"}}},
				{title: "Active connections", kind: "stat", w: 6, h: 5, unit: "short",
					description: "Open downstream connections across all listeners of each gateway (highest over the interval).",
					targets:     []target{{expr: gauge("sum", "flexgw_active_connections", "", "instance"), legend: "connections"}}},
				{title: "Requests per second by status class", stack: true, unit: "reqps",
					description: "Request rate split by response status class; 'none' means the client left before a response was sent.",
					targets:     []target{{expr: rate("flexgw_requests_total", "", "code_class"), legend: "{{code_class}}"}}},
				{title: "Requests per second by API", stack: true, unit: "reqps",
					description: "Request rate of each ApiInstance.",
					targets:     []target{{expr: rate("flexgw_requests_total", "", "api"), legend: "{{api}}"}}},
				{title: "5xx ratio by API", unit: "percentunit", min: f64(0),
					description: "Share of each API's requests answered with a 5xx status.",
					targets:     []target{{expr: ratio("flexgw_requests_total", fiveXX, "", "api"), legend: "{{api}}"}}},
				{title: "Latency percentiles", unit: "s",
					description: "p50, p95 and p99 of total request time across all APIs.",
					targets: []target{
						{expr: quantile(0.5, "flexgw_request_duration_seconds", "", ""), legend: "p50"},
						{expr: quantile(0.95, "flexgw_request_duration_seconds", "", ""), legend: "p95"},
						{expr: quantile(0.99, "flexgw_request_duration_seconds", "", ""), legend: "p99"},
					}},
				{title: "Gateway overhead vs upstream time (p95)", unit: "s",
					description: "Where the time goes: p95 of the time spent in flexgw itself (total minus upstream) against p95 of the upstream's time to response headers.",
					targets: []target{
						{expr: quantile(0.95, "flexgw_gateway_overhead_seconds", "", ""), legend: "gateway overhead"},
						{expr: quantile(0.95, "flexgw_upstream_duration_seconds", "", ""), legend: "upstream"},
					}},
				{title: "Policy denials and errors per second", stack: true, unit: "reqps",
					description: "Requests a policy did not let through (outcome denied) or failed on (outcome error), by policy.",
					targets:     []target{{expr: rate("flexgw_policy_decisions_total", `outcome!="allowed"`, "policy, outcome"), legend: "{{policy}} {{outcome}}"}}},
			}},
			{title: "Configuration", panels: []panel{
				{title: "Snapshot version", kind: "stat", w: 6, h: 5, unit: "none",
					description: "IR snapshot version being served (increases by one on every accepted reload).",
					targets:     []target{{expr: gauge("max", "flexgw_snapshot_info", "", "version"), legend: "{{version}}"}}},
				{title: "Time since last good reload", kind: "stat", w: 6, h: 5, unit: "s",
					description: "Seconds since the configuration was last reloaded successfully.",
					targets:     []target{{expr: "time() - " + gauge("max", "flexgw_config_last_reload_success_timestamp_seconds", "", "instance"), legend: "{{instance}}"}}},
				{title: "Config reloads", w: 12, h: 5, unit: "short", stack: true,
					description: "Reloads in each interval by result; a failed reload keeps serving the last good config.",
					targets:     []target{{expr: increase("flexgw_config_reloads_total", "", "result"), legend: "{{result}}"}}},
			}},
			{title: "Envoy data plane (xDS): no data with the built-in data plane", collapsed: true, panels: []panel{
				{title: "Snapshots pushed to Envoy", w: 8, unit: "short", stack: true,
					description: "Snapshots pushed to the ADS server in each interval, by result; error means translation failed and Envoy keeps the previous config." + offEnvoy,
					targets:     []target{{expr: increase("flexgw_xds_pushes_total", "", "result"), legend: "{{result}}"}}},
				{title: "xDS NACKs", w: 8, unit: "short", stack: true,
					description: "xDS responses Envoy rejected in each interval, by resource type; any NACK means Envoy runs an older config than flexgw." + offEnvoy,
					targets:     []target{{expr: increase("flexgw_xds_nacks_total", "", "type"), legend: "{{type}}"}}},
				{title: "Envoy stats scrape", kind: "stat", w: 8, h: 8, unit: "bool_yes_no",
					description: "Whether the last scrape of Envoy's admin stats succeeded (lowest over the interval); when it fails, request metrics stop updating in Envoy mode." + offEnvoy,
					targets:     []target{{expr: gauge("min", "flexgw_envoy_stats_up", "", "instance"), legend: "{{instance}}"}}},
			}},
			{title: "Gateway process", panels: []panel{
				{title: "CPU", w: 6, unit: "percentunit",
					description: "CPU used by the flexgw process, in cores (1.0 = one full core).",
					targets:     []target{{expr: rate("process_cpu_seconds_total", "", "instance"), legend: "{{instance}}"}}},
				{title: "Resident memory", w: 6, unit: "bytes",
					description: "Resident set size of the flexgw process.",
					targets:     []target{{expr: gauge("max", "process_resident_memory_bytes", "", "instance"), legend: "{{instance}}"}}},
				{title: "Goroutines", w: 6, unit: "short",
					description: "Goroutines in the flexgw process; steady growth under steady load is a leak.",
					targets:     []target{{expr: gauge("max", "go_goroutines", "", "instance"), legend: "{{instance}}"}}},
				{title: "Shared storage errors per second", w: 6, unit: "short",
					description: "Failed operations on the Redis shared storage (distributed rate limits), by operation. Policies fail open or closed as configured while Redis is unreachable." + offRedis,
					targets:     []target{{expr: rate("flexgw_shared_storage_errors_total", "", "op"), legend: "{{op}}"}}},
				{title: "Build", kind: "table", w: 24, h: 5, unit: "none",
					description: "Version, commit and Go version each gateway runs (flexgw_build_info); more than one version means a rollout is under way.",
					targets:     []target{{expr: gauge("max", "flexgw_build_info", "", "instance, version, commit, goversion"), legend: "{{instance}} {{version}}"}}},
			}},
		},
	}
}

func apiDrilldown() dashboard {
	return dashboard{
		file: "flexgw-api.json", uid: "flexgw-api", title: "flexgw / API drill-down",
		description: "One API (ApiInstance) and its routes: rate, errors, latency split between the gateway and the upstream, policies.",
		vars: []variable{
			{name: "api", label: "API", query: labelValues("flexgw_requests_total", "", "api"), multi: true},
			{name: "route", label: "Route", query: labelValues("flexgw_requests_total", apiSel, "route"), multi: true},
		},
		rows: []row{
			{title: "Traffic and errors", panels: []panel{
				{title: "Requests per second by route", stack: true, unit: "reqps",
					description: "Request rate of each selected route.",
					targets:     []target{{expr: rate("flexgw_requests_total", apiRoute, "api, route"), legend: "{{api}} {{route}}"}}},
				{title: "Requests per second by status class", stack: true, unit: "reqps",
					description: "Request rate of the selected routes by status class ('none': no response sent).",
					targets:     []target{{expr: rate("flexgw_requests_total", apiRoute, "code_class"), legend: "{{code_class}}"}}},
				{title: "Error ratio", unit: "percentunit", min: f64(0),
					description: "Share of requests answered 5xx and 4xx, per route.",
					targets: []target{
						{expr: ratio("flexgw_requests_total", fiveXX, apiRoute, "route"), legend: "5xx {{route}}"},
						{expr: ratio("flexgw_requests_total", `code_class="4xx"`, apiRoute, "route"), legend: "4xx {{route}}"},
					}},
				{title: "Requests per second by method", stack: true, unit: "reqps",
					description: "Request rate by normalised method (methods outside the standard set count as OTHER).",
					targets:     []target{{expr: rate("flexgw_requests_total", apiRoute, "method"), legend: "{{method}}"}}},
			}},
			{title: "Latency", panels: []panel{
				{title: "Request duration p50 / p95 / p99", unit: "s",
					description: "Percentiles of total request time of the selected routes. Exemplars link to the trace of a slow request.",
					targets: []target{
						{expr: quantile(0.5, "flexgw_request_duration_seconds", apiRoute, ""), legend: "p50"},
						{expr: quantile(0.95, "flexgw_request_duration_seconds", apiRoute, ""), legend: "p95"},
						{expr: quantile(0.99, "flexgw_request_duration_seconds", apiRoute, ""), legend: "p99"},
					}},
				{title: "p99 by route", unit: "s",
					description: "99th percentile of total request time per route.",
					targets:     []target{{expr: quantile(0.99, "flexgw_request_duration_seconds", apiRoute, "route"), legend: "{{route}}"}}},
				{title: "Gateway overhead vs upstream (p50 / p95)", unit: "s",
					description: "Time spent in flexgw (policies, routing, proxying) against time spent waiting for the upstream.",
					targets: []target{
						{expr: quantile(0.5, "flexgw_gateway_overhead_seconds", apiSel, ""), legend: "gateway p50"},
						{expr: quantile(0.95, "flexgw_gateway_overhead_seconds", apiSel, ""), legend: "gateway p95"},
						{expr: quantile(0.5, "flexgw_upstream_duration_seconds", apiRoute, ""), legend: "upstream p50"},
						{expr: quantile(0.95, "flexgw_upstream_duration_seconds", apiRoute, ""), legend: "upstream p95"},
					}},
				{title: "Upstream time p95 by service", unit: "s",
					description: "95th percentile of upstream time to response headers, per destination service of the selected routes.",
					targets:     []target{{expr: quantile(0.95, "flexgw_upstream_duration_seconds", apiRoute, "service"), legend: "{{service}}"}}},
			}},
			{title: "Payload and policies", panels: []panel{
				{title: "Request and response size p95", unit: "bytes",
					description: "95th percentile of bytes received from and sent to clients.",
					targets: []target{
						{expr: quantile(0.95, "flexgw_request_size_bytes", apiSel, "api"), legend: "request {{api}}"},
						{expr: quantile(0.95, "flexgw_response_size_bytes", apiSel, "api"), legend: "response {{api}}"},
					}},
				{title: "Policy decisions per second", stack: true, unit: "reqps",
					description: "Decisions of each policy by outcome (the policy that decided each request).",
					targets:     []target{{expr: rate("flexgw_policy_decisions_total", apiSel, "policy, outcome"), legend: "{{policy}} {{outcome}}"}}},
			}},
		},
	}
}

func upstreams() dashboard {
	return dashboard{
		file: "flexgw-upstreams.json", uid: "flexgw-upstreams", title: "flexgw / Upstreams",
		description: "Upstream services and endpoints: latency, health, and the kernel-measured TCP view from the eBPF probe.",
		vars: []variable{
			{name: "service", label: "Service", query: labelValues("flexgw_upstream_endpoint_healthy", "", "service"), multi: true},
		},
		rows: []row{
			{title: "Services", panels: []panel{
				{title: "Upstream requests per second", stack: true, unit: "reqps",
					description: "Requests that reached each upstream service.",
					targets:     []target{{expr: rate("flexgw_upstream_duration_seconds_count", serviceSel, "service"), legend: "{{service}}"}}},
				{title: "Upstream time p95 / p99", unit: "s",
					description: "Time from the upstream request start to its response headers, per service.",
					targets: []target{
						{expr: quantile(0.95, "flexgw_upstream_duration_seconds", serviceSel, "service"), legend: "p95 {{service}}"},
						{expr: quantile(0.99, "flexgw_upstream_duration_seconds", serviceSel, "service"), legend: "p99 {{service}}"},
					}},
				{title: "Healthy endpoints", stack: true, unit: "short",
					description: "Endpoints passing active health checks and not ejected by outlier detection, per service.",
					targets:     []target{{expr: gauge("sum", "flexgw_upstream_endpoint_healthy", serviceSel, "service"), legend: "{{service}}"}}},
				{title: "Unhealthy endpoints", kind: "table", unit: "short",
					description: "Endpoints currently failing health checks or ejected (value 0 over the whole interval).",
					targets:     []target{{expr: gauge("max", "flexgw_upstream_endpoint_healthy", serviceSel, "service, endpoint") + " == 0", legend: "{{service}} {{endpoint}}"}}},
			}},
			{title: "Kernel probe (eBPF)", panels: []panel{
				{title: "TCP connect latency p95", unit: "s",
					description: "Kernel-measured time from SYN sent to ESTABLISHED for the gateway's connections to each upstream endpoint." + offEBPF,
					targets:     []target{{expr: quantile(0.95, "flexgw_tcp_connect_duration_seconds", serviceSel, "service, endpoint"), legend: "{{service}} {{endpoint}}"}}},
				{title: "TCP connect failures per second", stack: true, unit: "cps",
					description: "Outgoing connects that never reached ESTABLISHED (refused, timed out, reset), per endpoint." + offEBPF,
					targets:     []target{{expr: rate("flexgw_tcp_connect_failures_total", serviceSel, "service, endpoint"), legend: "{{service}} {{endpoint}}"}}},
				{title: "Smoothed RTT p95", unit: "s",
					description: "Kernel smoothed round-trip time of established connections, upstream side per service and downstream side." + offEBPF,
					targets:     []target{{expr: quantile(0.95, "flexgw_tcp_rtt_seconds", "", "direction, service"), legend: "{{direction}} {{service}}"}}},
				{title: "Listener handshake latency p95", unit: "s",
					description: "Kernel-measured time from SYN received to ESTABLISHED for connections accepted by each listener; grows when the accept backlog fills." + offEBPF,
					targets:     []target{{expr: quantile(0.95, "flexgw_tcp_handshake_duration_seconds", "", "listener"), legend: "{{listener}}"}}},
				{title: "Connection lifetime p50", unit: "s",
					description: "How long the gateway's TCP connections live, ESTABLISHED to CLOSE; short upstream lifetimes mean poor connection reuse." + offEBPF,
					targets:     []target{{expr: quantile(0.5, "flexgw_tcp_connection_duration_seconds", "", "direction"), legend: "{{direction}}"}}},
				{title: "New connections per second", stack: true, unit: "cps",
					description: "Connections completed per second by direction, from the kernel's lifetime histogram." + offEBPF,
					targets:     []target{{expr: rate("flexgw_tcp_connection_duration_seconds_count", "", "direction"), legend: "{{direction}}"}}},
			}},
		},
	}
}

func logPipeline() dashboard {
	return dashboard{
		file: "flexgw-logpipe.json", uid: "flexgw-logpipe", title: "flexgw / Log pipeline",
		description: "Access-log delivery per exporter (Splunk, New Relic, Sumo Logic): throughput, retries, losses and the durable queue.",
		vars: []variable{
			{name: "exporter", label: "Exporter", query: labelValues("flexgw_logpipe_records_in_total", "", "exporter"), multi: true},
		},
		rows: []row{
			{title: "Throughput", panels: []panel{
				{title: "Records in vs sent per second", unit: "short",
					description: "Records accepted into each exporter's queue against records the aggregator confirmed; a lasting gap is a growing backlog.",
					targets: []target{
						{expr: rate("flexgw_logpipe_records_in_total", expSel, "exporter"), legend: "in {{exporter}}"},
						{expr: rate("flexgw_logpipe_sent_total", expSel, "exporter"), legend: "sent {{exporter}}"},
					}},
				{title: "Retries per second", stack: true, unit: "short",
					description: "Records in export attempts that failed and will be retried (aggregator down, throttling, 5xx).",
					targets:     []target{{expr: rate("flexgw_logpipe_retried_total", expSel, "exporter"), legend: "{{exporter}}"}}},
				{title: "Dropped and dead-lettered per second", stack: true, unit: "short",
					description: "Records lost before delivery (queue full or over its size cap) and records the aggregator refused (written to the dead-letter file).",
					targets: []target{
						{expr: rate("flexgw_logpipe_dropped_total", expSel, "exporter"), legend: "dropped {{exporter}}"},
						{expr: rate("flexgw_logpipe_dead_lettered_total", expSel, "exporter"), legend: "dead-lettered {{exporter}}"},
					}},
				{title: "Delivery ratio", unit: "percentunit", min: f64(0),
					description: "Records confirmed by the aggregator as a share of records accepted, per exporter.",
					targets:     []target{{expr: rate("flexgw_logpipe_sent_total", expSel, "exporter") + " / " + rate("flexgw_logpipe_records_in_total", expSel, "exporter"), legend: "{{exporter}}"}}},
			}},
			{title: "Durable queue", panels: []panel{
				{title: "Queue size", unit: "bytes",
					description: "Bytes waiting in each exporter's durable on-disk queue (highest over the interval).",
					targets:     []target{{expr: gauge("max", "flexgw_logpipe_queue_bytes", expSel, "exporter"), legend: "{{exporter}}"}}},
				{title: "Queue depth", unit: "short",
					description: "Records waiting in each exporter's durable queue (highest over the interval).",
					targets:     []target{{expr: gauge("max", "flexgw_logpipe_queue_depth", expSel, "exporter"), legend: "{{exporter}}"}}},
			}},
		},
	}
}
