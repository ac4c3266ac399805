package ebpf

import (
	"context"
	"errors"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/ir"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// hist builds a histogram from observations in microseconds, bucketed the
// way bpf/probe.bpf.c does.
func hist(us ...uint64) Hist {
	var h Hist
	for _, v := range us {
		h.Buckets[slotOf(v)]++
		h.SumMicros += v
	}
	return h
}

// slotOf mirrors slot_of in bpf/probe.bpf.c: bucket i holds 2^(i-1) < v <= 2^i.
func slotOf(us uint64) int {
	if us <= 1 {
		return 0
	}
	s := 64 - leadingZeros(us-1)
	if s >= NumBuckets {
		s = NumBuckets - 1
	}
	return s
}

func leadingZeros(v uint64) int {
	n := 0
	for i := 63; i >= 0 && v&(1<<uint(i)) == 0; i-- {
		n++
	}
	return n
}

func TestSlotBoundsAreInclusiveUpperBounds(t *testing.T) {
	for _, tc := range []struct {
		us   uint64
		slot int
	}{{0, 0}, {1, 0}, {2, 1}, {3, 2}, {4, 2}, {5, 3}, {1000, 10}, {1024, 10}, {1025, 11}, {1 << 50, NumBuckets - 1}} {
		if got := slotOf(tc.us); got != tc.slot {
			t.Errorf("slotOf(%d) = %d, want %d", tc.us, got, tc.slot)
		}
		if tc.slot < NumBuckets-1 && float64(tc.us)/1e6 > bucketUpperSeconds(tc.slot) {
			t.Errorf("%dµs is above its bucket's bound %g", tc.us, bucketUpperSeconds(tc.slot))
		}
	}
}

func TestPromHistogramIsCumulativeInSeconds(t *testing.T) {
	h := hist(1, 3, 3, 1000, 2_000_000)
	buckets, count, sum := h.promHistogram()
	if count != 5 {
		t.Fatalf("count = %d, want 5", count)
	}
	if want := (1 + 3 + 3 + 1000 + 2_000_000) / 1e6; math.Abs(sum-want) > 1e-9 {
		t.Fatalf("sum = %g, want %g", sum, want)
	}
	for le, want := range map[float64]uint64{1e-6: 1, 2e-6: 1, 4e-6: 3, 0.000512: 3, 0.001024: 4, 1.048576: 4, 2.097152: 5} {
		if got := buckets[le]; got != want {
			t.Errorf("bucket le=%g: %d, want %d", le, got, want)
		}
	}
	if len(buckets) != promBuckets {
		t.Errorf("%d buckets, want %d", len(buckets), promBuckets)
	}
}

func TestQuantileInterpolatesInsideLog2Bucket(t *testing.T) {
	var empty Hist
	if q := empty.Quantile(0.5); q != 0 {
		t.Fatalf("empty p50 = %g", q)
	}
	// 100 values in (512µs, 1024µs]: p50 half way through the bucket.
	var h Hist
	h.Buckets[10] = 100
	if got, want := h.Quantile(0.5), 0.000768; math.Abs(got-want) > 1e-9 {
		t.Fatalf("p50 = %g, want %g", got, want)
	}
	// One slow value among 99 fast: p99 stays fast, p100 is slow.
	h = hist(append(repeat(20, 99), 1_000_000)...)
	if p := h.Quantile(0.99); p > 32e-6 {
		t.Errorf("p99 = %g, want <= 32µs", p)
	}
	if p := h.Quantile(1); p < 0.5 {
		t.Errorf("p100 = %g, want the ~1s observation", p)
	}
}

func repeat(v uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

type fakeReader struct {
	c     Counters
	err   error
	reads int
}

func (f *fakeReader) Read() (Counters, error) {
	f.reads++
	return f.c, f.err
}

var (
	upA   = netip.MustParseAddrPort("10.0.0.1:8080")
	upA6  = netip.MustParseAddrPort("[::ffff:10.0.0.1]:8080")
	upB   = netip.MustParseAddrPort("10.0.0.2:8080")
	redis = netip.MustParseAddrPort("10.0.0.9:6379")
)

// testNames configures default/orders with orders.internal:8080 (resolving
// to upA's address) and 10.0.0.2:8080, and listener http_0.0.0.0_8081.
func testNames() NamesFunc {
	n := NamesFromSnapshot(context.Background(), &ir.Snapshot{
		Listeners: []*ir.Listener{{Name: "http_0.0.0.0_8081", Port: 8081}},
		Services: []*ir.Service{{Namespace: "default", Name: "orders",
			Endpoints: []ir.Endpoint{{Host: "orders.internal", Port: 8080}, {Host: "10.0.0.2", Port: 8080}}}},
	}, func(_ context.Context, host string) ([]netip.Addr, error) {
		return []netip.Addr{upA.Addr()}, nil
	})
	return func() *Names { return n }
}

func fakeCounters() Counters {
	return Counters{
		Connect: map[netip.AddrPort]Hist{
			upA: hist(20, 30), upA6: hist(40), upB: hist(1_000_000), redis: hist(50),
		},
		Failures:  map[netip.AddrPort]uint64{upB: 3, redis: 1},
		Handshake: map[uint16]Hist{8081: hist(10, 12, 14), 9000: hist(7)},
		RTT: map[RTTKey]Hist{
			{Direction: Outbound, Remote: upA}: hist(25),
			{Direction: Outbound, Remote: upB}: hist(35),
			{Direction: Inbound, Port: 8081}:   hist(15, 16),
		},
		Lifetime: map[Direction]Hist{Outbound: hist(5_000_000), Inbound: hist(100, 200)},
	}
}

func TestCollectorMetricsAndLabels(t *testing.T) {
	c := NewCollector(&fakeReader{c: fakeCounters()}, testNames(), 0)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]*dto.Metric{}
	for _, mf := range mfs {
		got[mf.GetName()] = map[string]*dto.Metric{}
		for _, m := range mf.GetMetric() {
			var parts []string
			for _, l := range m.GetLabel() {
				parts = append(parts, l.GetName()+"="+l.GetValue())
			}
			got[mf.GetName()][strings.Join(parts, ",")] = m
		}
	}
	count := func(name, labels string) uint64 {
		t.Helper()
		m, ok := got[name][labels]
		if !ok {
			t.Fatalf("%s{%s} missing; have %v", name, labels, keys(got[name]))
		}
		return m.GetHistogram().GetSampleCount()
	}
	// v4 and v4-mapped v6 keys of one endpoint merge into one series.
	if n := count("flexgw_tcp_connect_duration_seconds", "endpoint=orders.internal:8080,service=default/orders"); n != 3 {
		t.Errorf("orders.internal connects = %d, want 3", n)
	}
	if n := count("flexgw_tcp_connect_duration_seconds", "endpoint=10.0.0.9:6379,service=unknown"); n != 1 {
		t.Errorf("unresolved endpoint connects = %d, want 1", n)
	}
	if n := count("flexgw_tcp_handshake_duration_seconds", "listener=http_0.0.0.0_8081"); n != 3 {
		t.Errorf("listener handshakes = %d, want 3", n)
	}
	if n := count("flexgw_tcp_handshake_duration_seconds", "listener=:9000"); n != 1 {
		t.Errorf("unnamed listener handshakes = %d, want 1", n)
	}
	// RTT of both endpoints of default/orders merges into the service.
	if n := count("flexgw_tcp_rtt_seconds", "direction=outbound,service=default/orders"); n != 2 {
		t.Errorf("outbound rtt samples = %d, want 2", n)
	}
	if n := count("flexgw_tcp_rtt_seconds", "direction=inbound,service=http_0.0.0.0_8081"); n != 2 {
		t.Errorf("inbound rtt samples = %d, want 2", n)
	}
	if n := count("flexgw_tcp_connection_duration_seconds", "direction=outbound"); n != 1 {
		t.Errorf("outbound lifetimes = %d, want 1", n)
	}
	if v := got["flexgw_tcp_connect_failures_total"]["endpoint=10.0.0.2:8080,service=default/orders"].GetCounter().GetValue(); v != 3 {
		t.Errorf("failures = %g, want 3", v)
	}
	// The 1s connect is in the le=1.048576 bucket and not below.
	for _, b := range got["flexgw_tcp_connect_duration_seconds"]["endpoint=10.0.0.2:8080,service=default/orders"].GetHistogram().GetBucket() {
		if b.GetUpperBound() < 1 && b.GetCumulativeCount() != 0 {
			t.Errorf("1s connect counted in le=%g", b.GetUpperBound())
		}
		if b.GetUpperBound() == 1.048576 && b.GetCumulativeCount() != 1 {
			t.Errorf("le=1.048576 count %d, want 1", b.GetCumulativeCount())
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestCollectorSnapshot(t *testing.T) {
	c := NewCollector(&fakeReader{c: fakeCounters()}, testNames(), 0)
	s := c.Snapshot()
	if !s.Enabled || s.Error != "" {
		t.Fatalf("snapshot %+v", s)
	}
	var orders, slow, unknown *EndpointSnapshot
	for i := range s.Endpoints {
		e := &s.Endpoints[i]
		switch e.Endpoint {
		case "orders.internal:8080":
			orders = e
		case "10.0.0.2:8080":
			slow = e
		case "10.0.0.9:6379":
			unknown = e
		}
	}
	if orders == nil || slow == nil || unknown == nil {
		t.Fatalf("endpoints %+v", s.Endpoints)
	}
	if orders.Connects != 3 || orders.ConnectP50 <= 0 || orders.ConnectP99 > 64e-6 || orders.RTTSamples != 1 {
		t.Errorf("orders %+v", *orders)
	}
	if slow.Failures != 3 || slow.ConnectP99 < 0.5 {
		t.Errorf("slow %+v", *slow)
	}
	if unknown.Service != UnknownService || unknown.Failures != 1 {
		t.Errorf("unknown %+v", *unknown)
	}
	if len(s.Listeners) != 2 || s.Listeners[0].Listener != ":9000" || s.Listeners[1].Listener != "http_0.0.0.0_8081" ||
		s.Listeners[1].Port != 8081 || s.Listeners[1].Handshakes != 3 || s.Listeners[1].RTTSamples != 2 {
		t.Errorf("listeners %+v", s.Listeners)
	}
	if len(s.Lifetime) != 2 || s.Lifetime[0].Direction != "inbound" || s.Lifetime[0].Closed != 2 {
		t.Errorf("lifetime %+v", s.Lifetime)
	}
}

func TestCollectorCachesReadsForInterval(t *testing.T) {
	r := &fakeReader{c: fakeCounters()}
	c := NewCollector(r, nil, time.Minute)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	c.Snapshot()
	c.Snapshot()
	collectCount(c)
	if r.reads != 1 {
		t.Fatalf("%d reads within the interval, want 1", r.reads)
	}
	now = now.Add(time.Minute)
	c.Snapshot()
	if r.reads != 2 {
		t.Fatalf("%d reads after the interval, want 2", r.reads)
	}
}

func TestCollectorReadErrorIsReported(t *testing.T) {
	c := NewCollector(&fakeReader{err: errors.New("map gone")}, nil, 0)
	if s := c.Snapshot(); s.Error != "map gone" {
		t.Fatalf("snapshot error %q", s.Error)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err == nil || !strings.Contains(err.Error(), "map gone") {
		t.Fatalf("gather error %v", err)
	}
}

func TestNilProbeIsInert(t *testing.T) {
	var p *Probe
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if s := p.Snapshot(); s.Enabled {
		t.Fatal("nil probe snapshot enabled")
	}
	if n := collectCount(p); n != 0 {
		t.Fatalf("nil probe collected %d metrics", n)
	}
}

func TestStartModes(t *testing.T) {
	if p, err := Start(Options{Mode: ModeOff}); p != nil || err != nil {
		t.Fatalf("off: %v, %v", p, err)
	}
	if _, err := Start(Options{Mode: "sometimes"}); err == nil || !strings.Contains(err.Error(), `"sometimes"`) {
		t.Fatalf("bad mode error %v", err)
	}
}

func TestNamesFromSnapshot(t *testing.T) {
	snap := &ir.Snapshot{
		Listeners: []*ir.Listener{{Name: "http_0.0.0.0_8081", Port: 8081}},
		Services: []*ir.Service{
			{Namespace: "default", Name: "orders", Endpoints: []ir.Endpoint{{Host: "10.0.0.1", Port: 8080}, {Host: "orders.internal", Port: 8080}}},
			{Namespace: "default", Name: "gone", Endpoints: []ir.Endpoint{{Host: "nxdomain.invalid", Port: 80}}},
		},
	}
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "orders.internal" {
			return []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")}, nil
		}
		return nil, errors.New("no such host")
	}
	n := NamesFromSnapshot(context.Background(), snap, lookup)
	orders := func(ep string) []Configured { return []Configured{{"default/orders", ep}} }
	for _, tc := range []struct {
		ap   string
		want []Configured
	}{
		{"10.0.0.1:8080", orders("10.0.0.1:8080")},
		{"[::ffff:10.0.0.1]:8080", orders("10.0.0.1:8080")},
		{"10.0.0.5:8080", orders("orders.internal:8080")},
		{"[fd00::5]:8080", orders("orders.internal:8080")},
		{"10.0.0.1:9999", nil},
	} {
		if got := n.Owners(netip.MustParseAddrPort(tc.ap)); !slices.Equal(got, tc.want) {
			t.Errorf("Owners(%s) = %v, want %v", tc.ap, got, tc.want)
		}
	}
	eps := n.Endpoints()
	if len(eps) != 3 || eps[0].Endpoint != "nxdomain.invalid:80" || eps[0].ResolveError != "no such host" || len(eps[0].Addresses) != 0 ||
		eps[2].Endpoint != "orders.internal:8080" || len(eps[2].Addresses) != 2 {
		t.Errorf("configured endpoints %+v", eps)
	}
	if l, ok := n.Listener(8081); !ok || l != "http_0.0.0.0_8081" {
		t.Errorf("Listener(8081) = %q %v", l, ok)
	}
	if _, ok := n.Listener(1); ok {
		t.Error("Listener(1) resolved")
	}
}

// collectCount runs c.Collect and counts the metrics it sends.
func collectCount(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	n := 0
	for range ch {
		n++
	}
	return n
}

// sharedNames configures four services: default/a at localhost:9000
// (127.0.0.1 and ::1), default/b at 127.0.0.1:9000 (the same address),
// default/c at 127.0.0.1:9001 (its own) and default/d at a host that does
// not resolve.
func sharedNames(t *testing.T) NamesFunc {
	t.Helper()
	svc := func(name, host string, port int) *ir.Service {
		return &ir.Service{Namespace: "default", Name: name, Endpoints: []ir.Endpoint{{Host: host, Port: port}}}
	}
	n := NamesFromSnapshot(context.Background(), &ir.Snapshot{Services: []*ir.Service{
		svc("b", "127.0.0.1", 9000), svc("a", "localhost", 9000), svc("c", "127.0.0.1", 9001), svc("d", "gone.invalid", 80),
	}}, func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "localhost":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, nil
		}
		return nil, errors.New("lookup " + host + ": no such host")
	})
	return func() *Names { return n }
}

func TestCollectorSharedAddressIsShownShared(t *testing.T) {
	v4, v6, own := netip.MustParseAddrPort("127.0.0.1:9000"), netip.MustParseAddrPort("[::1]:9000"), netip.MustParseAddrPort("127.0.0.1:9001")
	c := NewCollector(&fakeReader{c: Counters{
		Connect:  map[netip.AddrPort]Hist{v4: hist(10, 10, 10, 10), v6: hist(20), own: hist(30, 30)},
		Failures: map[netip.AddrPort]uint64{v4: 2},
		RTT:      map[RTTKey]Hist{{Direction: Outbound, Remote: v6}: hist(5)},
	}}, sharedNames(t), 0)
	s := c.Snapshot()
	byName := map[string]EndpointSnapshot{}
	for _, e := range s.Endpoints {
		byName[e.Service+" "+e.Endpoint] = e
	}
	if len(s.Endpoints) != 4 {
		t.Fatalf("endpoints %+v, want one per configured endpoint and no unknown", s.Endpoints)
	}
	a, b, own9001, d := byName["default/a localhost:9000"], byName["default/b 127.0.0.1:9000"], byName["default/c 127.0.0.1:9001"], byName["default/d gone.invalid:80"]
	// localhost:9000 counts both of its addresses and is shared (with b, on 127.0.0.1).
	if a.Connects != 5 || a.Failures != 2 || a.RTTSamples != 1 || !a.Shared ||
		!slices.Equal(a.SharedWith, []Configured{{"default/b", "127.0.0.1:9000"}}) ||
		!slices.Equal(a.Addresses, []string{"127.0.0.1:9000", "[::1]:9000"}) {
		t.Errorf("default/a %+v", a)
	}
	// 127.0.0.1:9000 shows the address's numbers, marked shared with a.
	if b.Connects != 4 || b.Failures != 2 || b.RTTSamples != 0 || !b.Shared ||
		!slices.Equal(b.SharedWith, []Configured{{"default/a", "localhost:9000"}}) {
		t.Errorf("default/b %+v", b)
	}
	if own9001.Connects != 2 || own9001.Shared || own9001.SharedWith != nil {
		t.Errorf("default/c %+v", own9001)
	}
	if d.Connects != 0 || len(d.Addresses) != 0 || !strings.Contains(d.ResolveError, "no such host") || d.Shared {
		t.Errorf("default/d %+v", d)
	}

	// Prometheus: the shared address is one series naming both services,
	// never credited to one of them.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "flexgw_tcp_connect_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var parts []string
			for _, l := range m.GetLabel() {
				parts = append(parts, l.GetName()+"="+l.GetValue())
			}
			got[strings.Join(parts, ",")] = m.GetHistogram().GetSampleCount()
		}
	}
	want := map[string]uint64{
		"endpoint=127.0.0.1:9000,service=default/a,default/b": 4,
		"endpoint=localhost:9000,service=default/a":           1,
		"endpoint=127.0.0.1:9001,service=default/c":           2,
	}
	if !maps.Equal(got, want) {
		t.Errorf("connect series %v, want %v", got, want)
	}
}
