// Package ebpfbench measures what the kernel latency probe costs a gateway:
// the real flexgw binary (builtin data plane) in its own process and cgroup,
// started with --ebpf off and --ebpf on in interleaved rounds, loaded by wrk
// against an upstream that both run outside that cgroup; it reports the
// median on/off throughput ratio per scenario (keep-alive and connection per
// request) and the probe's own CPU time as the kernel accounts it (BPF
// run-time statistics) against the gateway process's CPU (/proc/PID/stat).
// Run it with bench/ebpf/run.sh as root (needs wrk and taskset).
package ebpfbench
