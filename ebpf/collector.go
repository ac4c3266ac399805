package ebpf

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Direction says who opened a connection.
type Direction uint8

const (
	// Outbound connections were opened by the gateway (to upstreams,
	// exporters, Redis...).
	Outbound Direction = 0
	// Inbound connections were accepted on one of the gateway's listeners.
	Inbound Direction = 1
)

// String is the metric label value.
func (d Direction) String() string {
	if d == Inbound {
		return "inbound"
	}
	return "outbound"
}

// RTTKey identifies one kernel RTT histogram: outbound by remote endpoint,
// inbound by local (listener) port.
type RTTKey struct {
	Direction Direction
	// Remote is the remote endpoint of an outbound connection (zero for
	// inbound).
	Remote netip.AddrPort
	// Port is the local port of an inbound connection (0 for outbound).
	Port uint16
}

// Counters is everything the kernel has aggregated since the probe was
// loaded. All values are cumulative.
type Counters struct {
	Connect   map[netip.AddrPort]Hist
	Failures  map[netip.AddrPort]uint64
	Handshake map[uint16]Hist
	RTT       map[RTTKey]Hist
	Lifetime  map[Direction]Hist
}

// Reader reads the kernel's aggregates. The probe's implementation reads
// the BPF maps; tests substitute a fake.
type Reader interface {
	Read() (Counters, error)
}

// Resolver maps a remote endpoint to the service (IR key "namespace/name")
// and endpoint name it belongs to.
type Resolver func(ip netip.AddrPort) (service, endpoint string, ok bool)

// ListenerResolver maps a local port to the name of the listener bound to it.
type ListenerResolver func(port uint16) (listener string, ok bool)

// UnknownService labels connections to endpoints the resolver does not know
// (exporters, Redis, an upstream removed from config). Their endpoint label
// is still the address, so they stay visible; the number of series is
// bounded by the kernel map size.
const UnknownService = "unknown"

var (
	descConnect = prometheus.NewDesc("flexgw_tcp_connect_duration_seconds",
		"Kernel-measured TCP connect latency (SYN sent to ESTABLISHED) of the gateway's outgoing connections.",
		[]string{"service", "endpoint"}, nil)
	descHandshake = prometheus.NewDesc("flexgw_tcp_handshake_duration_seconds",
		"Kernel-measured TCP handshake latency (SYN received to ESTABLISHED) of connections accepted by a listener.",
		[]string{"listener"}, nil)
	descRTT = prometheus.NewDesc("flexgw_tcp_rtt_seconds",
		"Kernel smoothed RTT of the gateway's established TCP connections, sampled at most once per second per connection.",
		[]string{"direction", "service"}, nil)
	descFailures = prometheus.NewDesc("flexgw_tcp_connect_failures_total",
		"Outgoing TCP connects that ended before ESTABLISHED (refused, timed out, aborted).",
		[]string{"service", "endpoint"}, nil)
	descLifetime = prometheus.NewDesc("flexgw_tcp_connection_duration_seconds",
		"Lifetime of the gateway's TCP connections, ESTABLISHED to CLOSE.",
		[]string{"direction"}, nil)
)

// Collector turns a Reader's counters into Prometheus metrics and
// Snapshots. Reads are cached for Interval so a scrape and `flexgw top`
// polling together do not read the maps twice.
type Collector struct {
	reader    Reader
	resolve   Resolver
	listeners ListenerResolver
	interval  time.Duration
	now       func() time.Time

	mu      sync.Mutex
	last    Counters
	lastAt  time.Time
	lastErr error
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector over r. resolve and listeners may be nil
// (every endpoint is then unknown and listeners are named by port).
func NewCollector(r Reader, resolve Resolver, listeners ListenerResolver, interval time.Duration) *Collector {
	return &Collector{reader: r, resolve: resolve, listeners: listeners, interval: interval, now: time.Now}
}

func (c *Collector) read() (Counters, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if !c.lastAt.IsZero() && now.Sub(c.lastAt) < c.interval {
		return c.last, c.lastErr
	}
	c.last, c.lastErr = c.reader.Read()
	c.lastAt = now
	return c.last, c.lastErr
}

func (c *Collector) endpointLabels(ap netip.AddrPort) (service, endpoint string) {
	if c.resolve != nil {
		if s, e, ok := c.resolve(ap); ok {
			return s, e
		}
	}
	return UnknownService, ap.String()
}

func (c *Collector) listenerLabel(port uint16) string {
	if c.listeners != nil {
		if l, ok := c.listeners(port); ok {
			return l
		}
	}
	return ":" + strconv.Itoa(int(port))
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnect, descHandshake, descRTT, descFailures, descLifetime} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Several kernel keys can map to
// the same labels (an endpoint seen as IPv4 and as IPv4-mapped IPv6, two
// addresses of one service for RTT); their histograms are merged.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	cnt, err := c.read()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descConnect, err)
		return
	}
	l := c.label(cnt)
	emitHists(ch, descConnect, l.connect)
	emitHists(ch, descHandshake, l.handshake)
	emitHists(ch, descRTT, l.rtt)
	emitHists(ch, descLifetime, l.lifetime)
	for _, k := range sortedKeys(l.failures) {
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(l.failures[k]), k.a, k.b)
	}
}

// labelPair is a metric's label values (one or two labels).
type labelPair struct{ a, b string }

type labelled struct {
	connect, handshake, rtt, lifetime map[labelPair]*Hist
	failures                          map[labelPair]uint64
	// per endpoint RTT and listener port for the snapshot
	endpointRTT  map[labelPair]*Hist
	listenerRTT  map[string]*Hist
	listenerPort map[string]uint16
}

func addHist(m map[labelPair]*Hist, k labelPair, h Hist) {
	if cur, ok := m[k]; ok {
		cur.Add(&h)
		return
	}
	m[k] = &h
}

func (c *Collector) label(cnt Counters) labelled {
	l := labelled{
		connect: map[labelPair]*Hist{}, handshake: map[labelPair]*Hist{}, rtt: map[labelPair]*Hist{},
		lifetime: map[labelPair]*Hist{}, failures: map[labelPair]uint64{},
		endpointRTT: map[labelPair]*Hist{}, listenerRTT: map[string]*Hist{}, listenerPort: map[string]uint16{},
	}
	for ap, h := range cnt.Connect {
		s, e := c.endpointLabels(ap)
		addHist(l.connect, labelPair{s, e}, h)
	}
	for ap, n := range cnt.Failures {
		s, e := c.endpointLabels(ap)
		l.failures[labelPair{s, e}] += n
	}
	for port, h := range cnt.Handshake {
		name := c.listenerLabel(port)
		addHist(l.handshake, labelPair{a: name}, h)
		l.listenerPort[name] = port
	}
	for k, h := range cnt.RTT {
		if k.Direction == Inbound {
			name := c.listenerLabel(k.Port)
			addHist(l.rtt, labelPair{Inbound.String(), name}, h)
			lh := h
			if cur, ok := l.listenerRTT[name]; ok {
				cur.Add(&lh)
			} else {
				l.listenerRTT[name] = &lh
			}
			l.listenerPort[name] = k.Port
			continue
		}
		s, e := c.endpointLabels(k.Remote)
		addHist(l.rtt, labelPair{Outbound.String(), s}, h)
		addHist(l.endpointRTT, labelPair{s, e}, h)
	}
	for d, h := range cnt.Lifetime {
		addHist(l.lifetime, labelPair{a: d.String()}, h)
	}
	return l
}

func sortedKeys[V any](m map[labelPair]V) []labelPair {
	keys := make([]labelPair, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y labelPair) int {
		return cmp.Or(cmp.Compare(x.a, y.a), cmp.Compare(x.b, y.b))
	})
	return keys
}

func emitHists(ch chan<- prometheus.Metric, d *prometheus.Desc, m map[labelPair]*Hist) {
	for _, k := range sortedKeys(m) {
		buckets, count, sum := m[k].promHistogram()
		labels := []string{k.a}
		if d == descConnect || d == descRTT {
			labels = append(labels, k.b)
		}
		ch <- prometheus.MustNewConstHistogram(d, count, sum, buckets, labels...)
	}
}

// Snapshot is the probe's view for the admin API and `flexgw top`.
// Durations are in seconds; percentiles are estimated from the log2
// histograms (exact to within a factor of two, interpolated inside it).
type Snapshot struct {
	// Enabled is false when no probe runs (mode off, or auto without the
	// needed privileges); everything else is then empty.
	Enabled   bool               `json:"enabled"`
	Error     string             `json:"error,omitempty"`
	Endpoints []EndpointSnapshot `json:"endpoints"`
	Listeners []ListenerSnapshot `json:"listeners"`
	Lifetime  []LifetimeSnapshot `json:"lifetime"`
	ReadAt    time.Time          `json:"readAt"`
}

// EndpointSnapshot is one upstream endpoint's connect latency, failures and
// RTT.
type EndpointSnapshot struct {
	Service    string  `json:"service"`
	Endpoint   string  `json:"endpoint"`
	Connects   uint64  `json:"connects"`
	ConnectP50 float64 `json:"connectP50Seconds"`
	ConnectP99 float64 `json:"connectP99Seconds"`
	Failures   uint64  `json:"failures"`
	RTTP50     float64 `json:"rttP50Seconds"`
	RTTSamples uint64  `json:"rttSamples"`
}

// ListenerSnapshot is one listener's accept handshake latency and RTT.
type ListenerSnapshot struct {
	Listener     string  `json:"listener"`
	Port         uint16  `json:"port"`
	Handshakes   uint64  `json:"handshakes"`
	HandshakeP50 float64 `json:"handshakeP50Seconds"`
	HandshakeP99 float64 `json:"handshakeP99Seconds"`
	RTTP50       float64 `json:"rttP50Seconds"`
	RTTSamples   uint64  `json:"rttSamples"`
}

// LifetimeSnapshot is the lifetime of closed connections in one direction.
type LifetimeSnapshot struct {
	Direction string  `json:"direction"`
	Closed    uint64  `json:"closed"`
	P50       float64 `json:"p50Seconds"`
	P99       float64 `json:"p99Seconds"`
}

// Snapshot reads (or reuses a read younger than the interval) and
// summarises the counters.
func (c *Collector) Snapshot() Snapshot {
	cnt, err := c.read()
	s := Snapshot{Enabled: true, Endpoints: []EndpointSnapshot{}, Listeners: []ListenerSnapshot{}, Lifetime: []LifetimeSnapshot{}}
	c.mu.Lock()
	s.ReadAt = c.lastAt
	c.mu.Unlock()
	if err != nil {
		s.Error = err.Error()
		return s
	}
	l := c.label(cnt)
	eps := map[labelPair]*EndpointSnapshot{}
	ep := func(k labelPair) *EndpointSnapshot {
		if e, ok := eps[k]; ok {
			return e
		}
		e := &EndpointSnapshot{Service: k.a, Endpoint: k.b}
		eps[k] = e
		return e
	}
	for k, h := range l.connect {
		e := ep(k)
		e.Connects, e.ConnectP50, e.ConnectP99 = h.Count(), h.Quantile(0.5), h.Quantile(0.99)
	}
	for k, n := range l.failures {
		ep(k).Failures = n
	}
	for k, h := range l.endpointRTT {
		e := ep(k)
		e.RTTSamples, e.RTTP50 = h.Count(), h.Quantile(0.5)
	}
	for _, k := range sortedKeys(eps) {
		s.Endpoints = append(s.Endpoints, *eps[k])
	}
	names := map[string]bool{}
	for k := range l.handshake {
		names[k.a] = true
	}
	for n := range l.listenerRTT {
		names[n] = true
	}
	for _, n := range slices.Sorted(maps.Keys(names)) {
		ls := ListenerSnapshot{Listener: n, Port: l.listenerPort[n]}
		if h, ok := l.handshake[labelPair{a: n}]; ok {
			ls.Handshakes, ls.HandshakeP50, ls.HandshakeP99 = h.Count(), h.Quantile(0.5), h.Quantile(0.99)
		}
		if h, ok := l.listenerRTT[n]; ok {
			ls.RTTSamples, ls.RTTP50 = h.Count(), h.Quantile(0.5)
		}
		s.Listeners = append(s.Listeners, ls)
	}
	for _, k := range sortedKeys(l.lifetime) {
		h := l.lifetime[k]
		s.Lifetime = append(s.Lifetime, LifetimeSnapshot{Direction: k.a, Closed: h.Count(), P50: h.Quantile(0.5), P99: h.Quantile(0.99)})
	}
	return s
}
