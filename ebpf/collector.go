package ebpf

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
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

// NamesFunc returns the current Names (the agent swaps them on every
// accepted snapshot). It may return nil: every endpoint is then unknown and
// listeners are named by port.
type NamesFunc func() *Names

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
	reader   Reader
	names    NamesFunc
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	last    Counters
	lastAt  time.Time
	lastErr error
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector over r. names may be nil (every endpoint
// is then unknown and listeners are named by port).
func NewCollector(r Reader, names NamesFunc, interval time.Duration) *Collector {
	if names == nil {
		names = func() *Names { return nil }
	}
	return &Collector{reader: r, names: names, interval: interval, now: time.Now}
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

// endpointLabels are the metric labels of a remote address: the configured
// endpoint that resolves to it, or when several do (the address is shared),
// their services joined with "," and the address itself, so no one of them
// is credited with the others' connections.
func endpointLabels(n *Names, ap netip.AddrPort) (service, endpoint string) {
	owners := n.Owners(ap)
	switch len(owners) {
	case 0:
		return UnknownService, unmapped(ap).String()
	case 1:
		return owners[0].Service, owners[0].Endpoint
	}
	return sharedServices(owners), unmapped(ap).String()
}

// sharedServices joins the distinct services of owners (sorted) with ",".
func sharedServices(owners []Configured) string {
	var b strings.Builder
	for i, o := range owners {
		if i > 0 && o.Service == owners[i-1].Service {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(o.Service)
	}
	return b.String()
}

func unmapped(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func listenerLabel(n *Names, port uint16) string {
	if l, ok := n.Listener(port); ok {
		return l
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

// addrStats is what the kernel counted for one remote address (IPv4 and
// IPv4-mapped IPv6 keys merged).
type addrStats struct {
	connect, rtt Hist
	failures     uint64
}

type labelled struct {
	connect, handshake, rtt, lifetime map[labelPair]*Hist
	failures                          map[labelPair]uint64
	// per remote address, and per listener RTT and port, for the snapshot
	addrs        map[netip.AddrPort]*addrStats
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
	n := c.names()
	l := labelled{
		connect: map[labelPair]*Hist{}, handshake: map[labelPair]*Hist{}, rtt: map[labelPair]*Hist{},
		lifetime: map[labelPair]*Hist{}, failures: map[labelPair]uint64{},
		addrs: map[netip.AddrPort]*addrStats{}, listenerRTT: map[string]*Hist{}, listenerPort: map[string]uint16{},
	}
	addr := func(ap netip.AddrPort) *addrStats {
		ap = unmapped(ap)
		a, ok := l.addrs[ap]
		if !ok {
			a = &addrStats{}
			l.addrs[ap] = a
		}
		return a
	}
	for ap, h := range cnt.Connect {
		s, e := endpointLabels(n, ap)
		addHist(l.connect, labelPair{s, e}, h)
		addr(ap).connect.Add(&h)
	}
	for ap, f := range cnt.Failures {
		s, e := endpointLabels(n, ap)
		l.failures[labelPair{s, e}] += f
		addr(ap).failures += f
	}
	for port, h := range cnt.Handshake {
		name := listenerLabel(n, port)
		addHist(l.handshake, labelPair{a: name}, h)
		l.listenerPort[name] = port
	}
	for k, h := range cnt.RTT {
		if k.Direction == Inbound {
			name := listenerLabel(n, k.Port)
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
		s, _ := endpointLabels(n, k.Remote)
		addHist(l.rtt, labelPair{Outbound.String(), s}, h)
		addr(k.Remote).rtt.Add(&h)
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

// EndpointSnapshot is one configured endpoint's connect latency, failures
// and RTT, summed over the addresses it resolved to; or, with Service
// "unknown", one address no configured endpoint resolves to.
type EndpointSnapshot struct {
	Service  string `json:"service"`
	Endpoint string `json:"endpoint"`
	// Addresses are the IP:port pairs the numbers were counted on.
	Addresses []string `json:"addresses"`
	// Shared is true when another configured endpoint resolves to one of
	// Addresses: the kernel cannot tell their connections apart, so the
	// numbers include those of every endpoint in SharedWith.
	Shared     bool         `json:"shared"`
	SharedWith []Configured `json:"sharedWith,omitempty"`
	// ResolveError says why the endpoint's host name gave no address.
	ResolveError string  `json:"resolveError,omitempty"`
	Connects     uint64  `json:"connects"`
	ConnectP50   float64 `json:"connectP50Seconds"`
	ConnectP99   float64 `json:"connectP99Seconds"`
	Failures     uint64  `json:"failures"`
	RTTP50       float64 `json:"rttP50Seconds"`
	RTTSamples   uint64  `json:"rttSamples"`
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
	s.Endpoints = endpointSnapshots(c.names(), l.addrs)
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

// endpointSnapshots gives every configured endpoint the sum of its
// addresses' numbers, marking the ones whose addresses other configured
// endpoints share, then lists the addresses nobody configured.
func endpointSnapshots(n *Names, addrs map[netip.AddrPort]*addrStats) []EndpointSnapshot {
	out := []EndpointSnapshot{}
	claimed := map[netip.AddrPort]bool{}
	fill := func(e *EndpointSnapshot, sum *addrStats) {
		e.Connects, e.ConnectP50, e.ConnectP99 = sum.connect.Count(), sum.connect.Quantile(0.5), sum.connect.Quantile(0.99)
		e.Failures = sum.failures
		e.RTTSamples, e.RTTP50 = sum.rtt.Count(), sum.rtt.Quantile(0.5)
	}
	for _, ce := range n.Endpoints() {
		e := EndpointSnapshot{Service: ce.Service, Endpoint: ce.Endpoint, Addresses: []string{}, ResolveError: ce.ResolveError}
		var sum addrStats
		for _, ap := range ce.Addresses {
			claimed[ap] = true
			e.Addresses = append(e.Addresses, ap.String())
			for _, o := range n.Owners(ap) {
				if o != ce.Configured && !slices.Contains(e.SharedWith, o) {
					e.SharedWith = append(e.SharedWith, o)
				}
			}
			if a, ok := addrs[ap]; ok {
				sum.connect.Add(&a.connect)
				sum.rtt.Add(&a.rtt)
				sum.failures += a.failures
			}
		}
		slices.SortFunc(e.SharedWith, Configured.compare)
		e.Shared = len(e.SharedWith) > 0
		fill(&e, &sum)
		out = append(out, e)
	}
	var unknown []netip.AddrPort
	for ap := range addrs {
		if !claimed[ap] {
			unknown = append(unknown, ap)
		}
	}
	slices.SortFunc(unknown, netip.AddrPort.Compare)
	for _, ap := range unknown {
		e := EndpointSnapshot{Service: UnknownService, Endpoint: ap.String(), Addresses: []string{ap.String()}}
		fill(&e, addrs[ap])
		out = append(out, e)
	}
	return out
}
