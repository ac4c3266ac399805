package ebpf

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	cebpf "github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Probe is the loaded and attached kernel probe. It is a
// prometheus.Collector; a nil *Probe collects nothing.
type Probe struct {
	objs  probeObjects
	links []link.Link
	cg    *cgroupHandle
	coll  *Collector
	log   *slog.Logger
}

// Cgroup is the cgroup v2 directory whose sockets the probe measures.
func (p *Probe) Cgroup() string {
	if p == nil {
		return ""
	}
	return p.cg.path
}

func start(opts Options) (_ *Probe, err error) {
	if err := Check(); err != nil {
		return nil, err
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones
	// to the cgroup, where this is a no-op.
	_ = rlimit.RemoveMemlock()

	p := &Probe{log: opts.Logger}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.cg, err = setupCgroup(opts.Cgroup); err != nil {
		return nil, err
	}

	spec, err := loadProbe()
	if err != nil {
		return nil, fmt.Errorf("ebpf: parse embedded BPF object: %w", err)
	}
	if err := spec.Variables["target_cgroup_id"].Set(p.cg.id); err != nil {
		return nil, fmt.Errorf("ebpf: set target cgroup: %w", err)
	}
	if err := spec.Variables["target_cgroup_level"].Set(p.cg.level); err != nil {
		return nil, fmt.Errorf("ebpf: set target cgroup level: %w", err)
	}
	if err := spec.LoadAndAssign(&p.objs, nil); err != nil {
		var ve *cebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("ebpf: kernel verifier rejected the probe: %+v", ve)
		}
		return nil, fmt.Errorf("ebpf: load probe: %w", err)
	}

	tp, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "inet_sock_set_state", Program: p.objs.FlexgwSetState})
	if err != nil {
		return nil, fmt.Errorf("ebpf: attach raw tracepoint sock:inet_sock_set_state: %w", err)
	}
	p.links = append(p.links, tp)
	so, err := link.AttachCgroup(link.CgroupOptions{Path: p.cg.path, Attach: cebpf.AttachCGroupSockOps, Program: p.objs.FlexgwSockops})
	if err != nil {
		return nil, fmt.Errorf("ebpf: attach sockops to cgroup %s (needs CAP_NET_ADMIN): %w", p.cg.path, err)
	}
	p.links = append(p.links, so)

	p.coll = NewCollector(&mapReader{objs: &p.objs}, opts.Resolve, opts.Listeners, opts.Interval)
	p.log.Info("kernel latency probe attached", "cgroup", p.cg.path, "cgroup_id", p.cg.id)
	return p, nil
}

// Close detaches the programs, frees the maps and, if Start created the
// cgroup, moves the process back and removes it.
func (p *Probe) Close() error {
	if p == nil {
		return nil
	}
	var errs []error
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	p.links = nil
	errs = append(errs, p.objs.Close(), p.cg.close())
	return errors.Join(errs...)
}

// ProgramStats reports the kernel's run count and run time of the probe's
// programs (zero unless BPF statistics are enabled, see EnableStats).
func (p *Probe) ProgramStats() ([]ProgramStat, error) {
	if p == nil {
		return nil, nil
	}
	var out []ProgramStat
	for name, prog := range map[string]*cebpf.Program{"inet_sock_set_state": p.objs.FlexgwSetState, "sockops": p.objs.FlexgwSockops} {
		st, err := prog.Stats()
		if err != nil {
			return nil, fmt.Errorf("ebpf: program stats %s: %w", name, err)
		}
		out = append(out, ProgramStat{Name: name, Runs: st.RunCount, RunTime: st.Runtime})
	}
	return out, nil
}

// EnableStats turns on the kernel's BPF run-time accounting until the
// returned closer is closed (needs CAP_SYS_ADMIN). For benchmarks; it
// costs a little on every program run.
func EnableStats() (interface{ Close() error }, error) {
	c, err := cebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return nil, fmt.Errorf("ebpf: enable BPF stats: %w", err)
	}
	return c, nil
}

// mapReader reads the probe's maps.
type mapReader struct{ objs *probeObjects }

func addrPort(ep probeEndpoint) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(ep.Addr).Unmap(), ep.Port)
}

func toHist(h probeHist) Hist {
	return Hist{Buckets: h.Slots, SumMicros: h.SumUs}
}

func (r *mapReader) Read() (Counters, error) {
	c := Counters{
		Connect: map[netip.AddrPort]Hist{}, Failures: map[netip.AddrPort]uint64{},
		Handshake: map[uint16]Hist{}, RTT: map[RTTKey]Hist{}, Lifetime: map[Direction]Hist{},
	}
	var (
		ep   probeEndpoint
		h    probeHist
		n    uint64
		port uint16
		rk   probeRttKey
		dir  uint32
	)
	it := r.objs.ConnectHist.Iterate()
	for it.Next(&ep, &h) {
		c.Connect[addrPort(ep)] = toHist(h)
	}
	if err := it.Err(); err != nil {
		return c, fmt.Errorf("ebpf: read connect_hist: %w", err)
	}
	it = r.objs.ConnectFailures.Iterate()
	for it.Next(&ep, &n) {
		c.Failures[addrPort(ep)] = n
	}
	if err := it.Err(); err != nil {
		return c, fmt.Errorf("ebpf: read connect_failures: %w", err)
	}
	it = r.objs.HandshakeHist.Iterate()
	for it.Next(&port, &h) {
		c.Handshake[port] = toHist(h)
	}
	if err := it.Err(); err != nil {
		return c, fmt.Errorf("ebpf: read handshake_hist: %w", err)
	}
	it = r.objs.RttHist.Iterate()
	for it.Next(&rk, &h) {
		k := RTTKey{Direction: Direction(rk.Direction)}
		if k.Direction == Inbound {
			k.Port = rk.Ep.Port
		} else {
			k.Remote = addrPort(rk.Ep)
		}
		c.RTT[k] = toHist(h)
	}
	if err := it.Err(); err != nil {
		return c, fmt.Errorf("ebpf: read rtt_hist: %w", err)
	}
	it = r.objs.LifetimeHist.Iterate()
	for it.Next(&dir, &h) {
		if hh := toHist(h); hh.Count() > 0 {
			c.Lifetime[Direction(dir)] = hh
		}
	}
	if err := it.Err(); err != nil {
		return c, fmt.Errorf("ebpf: read lifetime_hist: %w", err)
	}
	return c, nil
}
