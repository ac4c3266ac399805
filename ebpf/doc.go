// Package ebpf is flexgw's kernel latency probe: TCP connect latency per
// upstream endpoint, accept handshake latency per listener, smoothed RTT,
// failed connects and connection lifetime, measured in the kernel by a raw
// tracepoint on sock:inet_sock_set_state and a cgroup sockops program, and
// aggregated there into log2 histograms that user space reads periodically.
//
// Only sockets created in the gateway's cgroup v2 (or one below it) are
// counted. Start puts the process into its own cgroup when it would
// otherwise sit in the root cgroup, so that other processes' connections are
// never measured.
//
// The kernel side is behind the Reader interface; everything from the raw
// histograms to Prometheus metrics and the JSON Snapshot (label mapping,
// bucket conversion, percentiles) is pure user space and tested without a
// kernel.
package ebpf
