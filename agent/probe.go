package agent

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/flexgw/flexgw/ebpf"
	"github.com/flexgw/flexgw/ir"
)

// startProbe loads the kernel latency probe before any listener or upstream
// socket exists: the probe counts only sockets created inside the cgroup it
// moves the process into.
func (a *Agent) startProbe(first *ir.Snapshot) (stopFunc, error) {
	var names atomic.Pointer[ebpf.Names]
	names.Store(ebpf.NamesFromSnapshot(context.Background(), first, nil))
	probe, err := ebpf.Start(ebpf.Options{
		Mode:   a.opts.EBPF,
		Logger: a.opts.Logger,
		Names:  names.Load,
	})
	if err != nil {
		return nil, fmt.Errorf("--ebpf %s: %w", a.opts.EBPF, err)
	}
	if probe == nil {
		a.statusExtra["ebpf"] = func() any {
			return map[string]any{"running": false, "mode": a.opts.EBPF, "reason": probeOffReason(a.opts.EBPF)}
		}
		return nil, nil
	}
	a.probe = probe
	a.registry.MustRegister(probe)
	// Each accepted snapshot resolves its host names again, so a reload
	// also picks up DNS changes.
	a.appliers = append(a.appliers, func(s *ir.Snapshot) error {
		names.Store(ebpf.NamesFromSnapshot(context.Background(), s, nil))
		return nil
	})
	a.adminExtra["GET /api/v1/ebpf"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, probe.Snapshot())
	})
	a.statusExtra["ebpf"] = func() any { return map[string]any{"running": true, "mode": a.opts.EBPF} }
	return func(context.Context) error {
		a.registry.Unregister(probe)
		return probe.Close()
	}, nil
}

func probeOffReason(mode string) string {
	if mode == "off" {
		return "disabled with --ebpf off"
	}
	if err := ebpf.Check(); err != nil {
		return err.Error()
	}
	return "not started"
}
