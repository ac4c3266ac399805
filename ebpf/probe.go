package ebpf

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Modes of Options.Mode.
const (
	// ModeAuto runs the probe when the kernel and privileges allow it and
	// otherwise logs one line saying what is missing and runs without it.
	ModeAuto = "auto"
	// ModeOn requires the probe: Start returns the error.
	ModeOn = "on"
	// ModeOff never loads anything.
	ModeOff = "off"
)

// Options configure Start.
type Options struct {
	// Mode is ModeAuto (the default when empty), ModeOn or ModeOff.
	Mode string
	// Cgroup is the cgroup v2 directory whose sockets are measured
	// (absolute, or relative to the cgroup2 mount). Empty: Start creates
	// flexgw-<pid> below the process's own cgroup, moves the process (all
	// threads) into it and removes it again on Close, so only the gateway
	// and the children it starts afterwards (Envoy, Fluent Bit) are counted.
	// Sockets opened before Start stay in the old cgroup and are not
	// counted: start the probe before the listeners.
	Cgroup string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Names maps remote addresses to the configured endpoints and local
	// ports to listeners (the agent answers from the current IR snapshot).
	// Addresses no endpoint resolves to are labelled service="unknown",
	// endpoint="<ip>:<port>"; unnamed ports ":<port>". Nil: all unknown.
	Names NamesFunc
	// Interval is the minimum time between two reads of the kernel maps
	// (scrapes and Snapshot calls in between reuse the last read). Default
	// one second.
	Interval time.Duration
	// RTTInterval is how often the smoothed RTT of every established
	// gateway connection is sampled into the RTT histograms (each
	// connection also gives one sample when it closes). Default five
	// seconds.
	RTTInterval time.Duration
}

func (o *Options) defaults() error {
	switch o.Mode {
	case "":
		o.Mode = ModeAuto
	case ModeAuto, ModeOn, ModeOff:
	default:
		return fmt.Errorf("ebpf: mode %q: want %s, %s or %s", o.Mode, ModeAuto, ModeOn, ModeOff)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = o.Logger.With("component", "ebpf")
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.RTTInterval <= 0 {
		o.RTTInterval = 5 * time.Second
	}
	return nil
}

// Start loads and attaches the probe according to opts.Mode:
//
//   - off: returns (nil, nil).
//   - auto: on any failure logs one warning naming what is missing and how
//     to enable it, and returns (nil, nil): the gateway runs on without it.
//   - on: returns the error.
//
// A nil *Probe is valid: it collects nothing and its Snapshot says
// Enabled=false.
func Start(opts Options) (*Probe, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if opts.Mode == ModeOff {
		return nil, nil
	}
	p, err := start(opts)
	if err != nil {
		if opts.Mode == ModeAuto {
			opts.Logger.Warn("kernel latency probe disabled (run with --ebpf off to silence, see docs/ebpf.md)", "reason", err.Error())
			return nil, nil
		}
		return nil, err
	}
	return p, nil
}

var _ prometheus.Collector = (*Probe)(nil)

// Describe implements prometheus.Collector.
func (p *Probe) Describe(ch chan<- *prometheus.Desc) {
	if p == nil {
		return
	}
	p.coll.Describe(ch)
}

// Collect implements prometheus.Collector.
func (p *Probe) Collect(ch chan<- prometheus.Metric) {
	if p == nil {
		return
	}
	p.coll.Collect(ch)
}

// Snapshot is the probe's current view for the admin API and `flexgw top`.
func (p *Probe) Snapshot() Snapshot {
	if p == nil {
		return Snapshot{Endpoints: []EndpointSnapshot{}, Listeners: []ListenerSnapshot{}, Lifetime: []LifetimeSnapshot{}}
	}
	return p.coll.Snapshot()
}

// ProgramStat is the kernel's accounting of one BPF program, available
// while BPF statistics are enabled (sysctl kernel.bpf_stats_enabled=1 or
// EnableStats).
type ProgramStat struct {
	Name    string
	Runs    uint64
	RunTime time.Duration
}
