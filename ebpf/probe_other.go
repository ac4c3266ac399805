//go:build !linux

package ebpf

import "errors"

// Probe is the kernel probe; it only exists on Linux. A nil *Probe is valid
// everywhere.
type Probe struct{ coll *Collector }

var errNotLinux = errors.New("ebpf: the kernel latency probe needs Linux")

func start(Options) (*Probe, error) { return nil, errNotLinux }

// Check reports that the probe needs Linux.
func Check() error { return errNotLinux }

// Close is a no-op.
func (p *Probe) Close() error { return nil }

// Cgroup is empty off Linux.
func (p *Probe) Cgroup() string { return "" }

// ProgramStats is empty off Linux.
func (p *Probe) ProgramStats() ([]ProgramStat, error) { return nil, nil }

// EnableStats fails off Linux.
func EnableStats() (interface{ Close() error }, error) { return nil, errNotLinux }

// SampleRTT is a no-op off Linux.
func (p *Probe) SampleRTT() error { return nil }
