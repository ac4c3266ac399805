// Package ebpfbench measures what the kernel latency probe costs a gateway:
// proxy throughput with the probe attached versus detached, and the probe's
// own CPU time as the kernel accounts it (BPF run-time statistics). Run it
// with `go test -run '^$' -bench . -benchtime 1x ./bench/ebpf/` as root.
package ebpfbench
