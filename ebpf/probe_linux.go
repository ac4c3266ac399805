package ebpf

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

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
	sweep *link.Iter
	cg    *cgroupHandle
	coll  *Collector
	log   *slog.Logger

	stop chan struct{}
	done chan struct{}
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
	if err := spec.LoadAndAssign(&p.objs, nil); err != nil {
		var ve *cebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("ebpf: kernel verifier rejected the probe: %+v", ve)
		}
		return nil, fmt.Errorf("ebpf: load probe: %w", err)
	}

	// sockops first: the tracepoint only acts on sockets it has marked.
	so, err := link.AttachCgroup(link.CgroupOptions{Path: p.cg.path, Attach: cebpf.AttachCGroupSockOps, Program: p.objs.FlexgwSockops})
	if err != nil {
		return nil, fmt.Errorf("ebpf: attach sockops to cgroup %s (needs CAP_NET_ADMIN): %w", p.cg.path, err)
	}
	p.links = append(p.links, so)
	tp, err := link.AttachTracing(link.TracingOptions{Program: p.objs.FlexgwSetState})
	if err != nil {
		return nil, fmt.Errorf("ebpf: attach BTF tracepoint sock:inet_sock_set_state: %w", err)
	}
	p.links = append(p.links, tp)
	if p.sweep, err = link.AttachIter(link.IterOptions{Program: p.objs.FlexgwRttSweep}); err != nil {
		return nil, fmt.Errorf("ebpf: attach TCP socket iterator: %w", err)
	}
	p.links = append(p.links, p.sweep)
	if err := p.SampleRTT(); err != nil {
		return nil, err
	}
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go p.maintain(opts.RTTInterval)

	p.coll = NewCollector(&mapReader{objs: &p.objs}, opts.Names, opts.Interval)
	p.log.Info("kernel latency probe attached", "cgroup", p.cg.path, "cgroup_id", p.cg.id)
	return p, nil
}

// Close detaches the programs, frees the maps and, if Start created the
// cgroup, moves the process back and removes it.
func (p *Probe) Close() error {
	if p == nil {
		return nil
	}
	if p.stop != nil {
		close(p.stop)
		<-p.done
		p.stop = nil
	}
	var errs []error
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	p.links = nil
	errs = append(errs, p.objs.Close(), p.cg.close())
	return errors.Join(errs...)
}

// SampleRTT adds the current smoothed RTT of every established gateway
// connection to the RTT histograms. The probe does it every
// Options.RTTInterval; tests call it directly.
func (p *Probe) SampleRTT() error {
	r, err := p.sweep.Open()
	if err != nil {
		return fmt.Errorf("ebpf: run TCP socket iterator: %w", err)
	}
	defer r.Close()
	// The program writes nothing; reading to EOF is what runs it over
	// every socket.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("ebpf: run TCP socket iterator: %w", err)
	}
	return nil
}

// pendingTTL is how long a connection may stay before ESTABLISHED in the
// kernel's conns map. Linux gives up on an unanswered connect after about
// 130 s (tcp_syn_retries=6) and on an unacknowledged SYN-ACK after about
// 60 s (tcp_synack_retries=5); an entry older than this is a handshake that
// ended without the probe seeing it end (a request socket dropped from the
// SYN queue never reaches CLOSE).
const pendingTTL = 3 * time.Minute

// maintain runs the periodic user-space work: RTT samples and expiry of
// handshakes that never completed.
func (p *Probe) maintain(every time.Duration) {
	defer close(p.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			if err := p.SampleRTT(); err != nil {
				p.log.Warn("RTT sample failed", "err", err)
			}
			now, err := monotonicNow()
			if err == nil {
				_, err = p.expirePending(now, pendingTTL)
			}
			if err != nil {
				p.log.Warn("expiring stale handshakes failed", "err", err)
			}
		}
	}
}

// monotonicNow reads CLOCK_MONOTONIC in nanoseconds: the clock of
// bpf_ktime_get_ns, which stamps the conns entries.
func monotonicNow() (uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("ebpf: read monotonic clock: %w", err)
	}
	return uint64(ts.Nano()), nil
}

// pendingCutoff is the newest start time (CLOCK_MONOTONIC ns) a handshake
// may have and still be older than olderThan at now. ok is false when the
// clock has not yet run for olderThan (the first minutes after boot):
// nothing can be that old then, and now-olderThan would wrap around to a
// cutoff every entry falls under.
func pendingCutoff(now uint64, olderThan time.Duration) (cutoff uint64, ok bool) {
	if olderThan < 0 {
		olderThan = 0
	}
	d := uint64(olderThan)
	if now < d {
		return 0, false
	}
	return now - d, true
}

// expirePending deletes the conns entries of handshakes that started more
// than olderThan before now (CLOCK_MONOTONIC ns, see monotonicNow) and have
// not completed, and returns how many. now is a parameter so tests can set
// the clock, including one that has run for less than olderThan.
func (p *Probe) expirePending(now uint64, olderThan time.Duration) (int, error) {
	cutoff, ok := pendingCutoff(now, olderThan)
	if !ok {
		return 0, nil
	}
	var (
		k     probeConnKey
		c     probeConn
		stale []probeConnKey
	)
	it := p.objs.Conns.Iterate()
	for it.Next(&k, &c) {
		if c.Established == 0 && c.StartNs <= cutoff {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("ebpf: read conns: %w", err)
	}
	n := 0
	for i := range stale {
		// The handshake may have completed meanwhile: then the entry
		// is established and must stay. Deleting only what is still
		// pending needs a re-check; a lost race costs one connection's
		// connect-latency sample, nothing more.
		if err := p.objs.Conns.Lookup(&stale[i], &c); err != nil || c.Established != 0 {
			continue
		}
		if err := p.objs.Conns.Delete(&stale[i]); err == nil {
			n++
		}
	}
	return n, nil
}

// ProgramStats reports the kernel's run count and run time of the probe's
// programs (zero unless BPF statistics are enabled, see EnableStats).
func (p *Probe) ProgramStats() ([]ProgramStat, error) {
	if p == nil {
		return nil, nil
	}
	var out []ProgramStat
	for name, prog := range map[string]*cebpf.Program{"inet_sock_set_state": p.objs.FlexgwSetState, "sockops": p.objs.FlexgwSockops, "rtt_sweep": p.objs.FlexgwRttSweep} {
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
