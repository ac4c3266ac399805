package ebpf

// The BPF object is compiled from bpf/probe.bpf.c with Debian's clang and
// committed (probe_bpfel.go, probe_bpfel.o) so that `go build` needs no
// clang. `make generate` (go generate ./ebpf/) reproduces it: the first line
// dumps the running kernel's BTF as vmlinux.h (not committed; CO-RE relocates
// the field offsets at load time on other kernels), the second compiles.
//go:generate sh -c "bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/vmlinux.h"
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type hist -type endpoint -type rtt_key -type conn_key -type conn probe bpf/probe.bpf.c -- -I./bpf
