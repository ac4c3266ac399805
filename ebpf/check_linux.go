package ebpf

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Linux capability numbers (include/uapi/linux/capability.h).
const (
	capNetAdmin = 12
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// Check reports everything the probe needs that this process or kernel
// lacks, each with how to enable it, or nil when the probe can load.
func Check() error {
	var errs []error
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		errs = append(errs, errors.New("kernel BTF is missing (/sys/kernel/btf/vmlinux): use a kernel built with CONFIG_DEBUG_INFO_BTF=y"))
	}
	if _, err := cgroup2Mount(); err != nil {
		errs = append(errs, err)
	}
	caps, err := effectiveCaps()
	if err != nil {
		errs = append(errs, err)
	} else {
		has := func(c uint) bool { return caps&(1<<c) != 0 }
		var missing []string
		if !has(capBPF) && !has(capSysAdmin) {
			missing = append(missing, "CAP_BPF")
		}
		if !has(capPerfmon) && !has(capSysAdmin) {
			missing = append(missing, "CAP_PERFMON")
		}
		if !has(capNetAdmin) {
			missing = append(missing, "CAP_NET_ADMIN")
		}
		if len(missing) > 0 {
			errs = append(errs, fmt.Errorf("missing capabilities %s: run as root, or grant them (systemd: AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_NET_ADMIN; docker: --cap-add BPF --cap-add PERFMON --cap-add NET_ADMIN)", strings.Join(missing, ", ")))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("ebpf: %w", errors.Join(errs...))
}

func effectiveCaps() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read capabilities: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("parse CapEff %q: %w", v, err)
			}
			return caps, nil
		}
	}
	return 0, errors.New("no CapEff line in /proc/self/status")
}
