// Package topapi is the JSON schema of the agent's live-dashboard endpoints:
// GET /api/v1/top (one Top snapshot) and GET /api/v1/logs/stream (server-sent
// access-log records). The agent (package stats) produces it and `flexgw top`
// (package tui) renders it; keeping the schema in its own leaf package lets
// the TUI build without the data plane.
package topapi

import "time"

// Top is one snapshot of everything the dashboard shows. Every rate and
// percentile is computed by the agent over Header.WindowSeconds.
type Top struct {
	Header    Header     `json:"header"`
	APIs      []API      `json:"apis"`
	Upstreams []Upstream `json:"upstreams"`
	Kernel    Kernel     `json:"kernel"`
	Pipeline  Pipeline   `json:"pipeline"`
}

// Header is the gateway identity and its totals.
type Header struct {
	GatewayID string `json:"gatewayId"`
	Version   string `json:"version"`
	// DataPlane is "envoy" or "builtin".
	DataPlane string    `json:"dataPlane"`
	StartedAt time.Time `json:"startedAt"`
	// UptimeSeconds is computed by the agent so the TUI needs no clock sync.
	UptimeSeconds   float64   `json:"uptimeSeconds"`
	Now             time.Time `json:"now"`
	SnapshotVersion uint64    `json:"snapshotVersion"`
	Reload          Reload    `json:"reload"`
	// WindowSeconds is the span rates and percentiles are computed over.
	WindowSeconds int `json:"windowSeconds"`
	// HistorySeconds is the span of the sparkline histories (one point a second).
	HistorySeconds int   `json:"historySeconds"`
	Totals         Rates `json:"totals"`
	// LogSubscribers and LogDropped describe the log stream's fan-out.
	LogSubscribers int    `json:"logSubscribers"`
	LogDropped     uint64 `json:"logDropped"`
}

// Reload is the result of the last configuration reload.
type Reload struct {
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
	At    time.Time `json:"at,omitempty"`
}

// Rates are request statistics over the window. Times are milliseconds.
type Rates struct {
	RPS float64 `json:"rps"`
	// Requests is the count in the window; RequestsTotal since start.
	Requests      uint64 `json:"requests"`
	RequestsTotal uint64 `json:"requestsTotal"`
	// Pct2xx, Pct4xx, Pct5xx are percentages of Requests (0-100).
	// ErrorPct counts 5xx and requests that got no response.
	Pct2xx   float64 `json:"pct2xx"`
	Pct4xx   float64 `json:"pct4xx"`
	Pct5xx   float64 `json:"pct5xx"`
	ErrorPct float64 `json:"errorPct"`
	P50Ms    float64 `json:"p50Ms"`
	P95Ms    float64 `json:"p95Ms"`
	P99Ms    float64 `json:"p99Ms"`
	// UpstreamP99Ms is the p99 of upstream time alone.
	UpstreamP99Ms float64 `json:"upstreamP99Ms"`
	// AvgUpstreamMs and AvgOverheadMs split the mean total time between the
	// upstream and the gateway itself (total minus upstream).
	AvgUpstreamMs float64 `json:"avgUpstreamMs"`
	AvgOverheadMs float64 `json:"avgOverheadMs"`
	// Denials are requests a policy denied, in the window and since start.
	Denials      uint64 `json:"denials"`
	DenialsTotal uint64 `json:"denialsTotal"`
}

// API is one ApiInstance with its routes and the services it reaches.
type API struct {
	// Name is the API's key (namespace/name).
	Name     string `json:"name"`
	BasePath string `json:"basePath,omitempty"`
	Listener string `json:"listener,omitempty"`
	// RouteCount is the number of routes; Routes and Services are only
	// filled when the request asked for this API's routes (see
	// stats.TopQuery).
	RouteCount int `json:"routeCount"`
	Rates
	// RPSHistory and P99History hold one point per second, oldest first,
	// ending with the last complete second (the current one is partial).
	RPSHistory []float64 `json:"rpsHistory,omitempty"`
	P99History []float64 `json:"p99History,omitempty"`
	Routes     []Route   `json:"routes,omitempty"`
	Services   []Service `json:"services,omitempty"`
}

// Route is one route of an API.
type Route struct {
	Name string `json:"name"`
	Rates
	RPSHistory []float64 `json:"rpsHistory,omitempty"`
	P99History []float64 `json:"p99History,omitempty"`
}

// Service is an upstream service as reached from one API.
type Service struct {
	Name string `json:"name"`
	Rates
}

// Upstream is one endpoint of a service with its health and kernel view.
type Upstream struct {
	Service  string `json:"service"`
	Endpoint string `json:"endpoint"`
	// Healthy says whether the endpoint currently receives traffic.
	Healthy bool `json:"healthy"`
	// Active is "healthy", "unhealthy" or "" when no active check runs.
	Active string `json:"active,omitempty"`
	// Passive is "ok", "ejected" or "" when no outlier detection runs.
	Passive string `json:"passive,omitempty"`
	// Kernel is the eBPF probe's view of this endpoint, nil when none.
	Kernel *KernelEndpoint `json:"kernel,omitempty"`
}

// Kernel is the eBPF probe's state.
type Kernel struct {
	Enabled bool `json:"enabled"`
	// Reason says why the probe is off ("not root", "kernel 4.x lacks BTF").
	Reason string `json:"reason,omitempty"`
	// Endpoints are the configured endpoints (Service and Endpoint as in
	// Upstream) and the addresses no endpoint resolves to (service
	// "unknown").
	Endpoints []KernelEndpoint `json:"endpoints,omitempty"`
}

// KernelEndpoint is TCP-level latency to one upstream endpoint, as the
// eBPF probe measured it on the addresses the endpoint resolved to
// (ebpf.EndpointSnapshot in milliseconds).
type KernelEndpoint struct {
	Service  string `json:"service"`
	Endpoint string `json:"endpoint"`
	// Addresses are the IP:port pairs the kernel counted on.
	Addresses []string `json:"addresses,omitempty"`
	// Shared is true when other configured endpoints resolve to one of
	// Addresses: the kernel cannot tell their connections apart, so the
	// numbers include those of every endpoint in SharedWith
	// ("namespace/name host:port").
	Shared     bool     `json:"shared,omitempty"`
	SharedWith []string `json:"sharedWith,omitempty"`
	// ResolveError says why the endpoint's host name gave no address.
	ResolveError string  `json:"resolveError,omitempty"`
	Connects     uint64  `json:"connects"`
	ConnectP50Ms float64 `json:"connectP50Ms"`
	ConnectP99Ms float64 `json:"connectP99Ms"`
	// Failures are connects that did not complete.
	Failures uint64 `json:"failures"`
	// RTTP50Ms is the median smoothed round-trip time the kernel measured.
	RTTP50Ms float64 `json:"rttP50Ms"`
}

// Pipeline is the access-log pipeline's state.
type Pipeline struct {
	// Mode is "fluent-bit", "in-process" or "" when logs are not shipped.
	Mode      string     `json:"mode,omitempty"`
	Exporters []Exporter `json:"exporters,omitempty"`
}

// Exporter is one log destination.
type Exporter struct {
	Name string `json:"name"`
	// Type is "splunk", "newrelic", "sumologic", ...
	Type       string `json:"type"`
	QueueDepth int    `json:"queueDepth"`
	// SentPerSec is computed by the agent from Sent when the provider leaves it 0.
	SentPerSec   float64 `json:"sentPerSec"`
	Sent         uint64  `json:"sent"`
	Retries      uint64  `json:"retries"`
	Dropped      uint64  `json:"dropped"`
	DeadLettered uint64  `json:"deadLettered"`
	LastError    string  `json:"lastError,omitempty"`
	// LastErrorAt is absent for an exporter that never failed.
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
}

// Log stream event names (the SSE "event:" field).
const (
	// EventRecord carries one access-log record (accesslog.Record JSON).
	EventRecord = "record"
	// EventDropped carries {"dropped":N}: records this subscriber missed
	// because it read too slowly.
	EventDropped = "dropped"
	// EventSampled carries {"sampled":N}: records skipped so far to hold
	// the subscriber's requested rate (the rate query parameter).
	EventSampled = "sampled"
	// EventBatch ends a batch of record events on a batched stream (the
	// batch query parameter) and carries a Batch. The backlog is the first
	// batch.
	EventBatch = "batch"
)

// Dropped is the data of an EventDropped event.
type Dropped struct {
	Dropped uint64 `json:"dropped"`
}

// Sampled is the data of an EventSampled event.
type Sampled struct {
	Sampled uint64 `json:"sampled"`
}

// Batch is the data of an EventBatch event.
type Batch struct {
	// Records is how many record events the batch held.
	Records int `json:"records"`
	// Skipped counts the records left out so far on this stream because a
	// batch holds at most the limit query parameter (the newest are sent).
	// They passed the stream's filters; the filters apply first.
	Skipped uint64 `json:"skipped"`
}
