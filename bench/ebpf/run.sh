#!/usr/bin/env bash
# Gateway throughput with the kernel probe on vs off, and the probe's own
# CPU (kernel BPF run-time counters) against the gateway process's CPU.
# The real flexgw binary runs in its own cgroup; wrk and the upstream run
# outside it. Needs root and wrk.
#   EBPF_ROUNDS=10 EBPF_ROUND_DUR=2s bench/ebpf/run.sh   # the defaults
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "run.sh: wrk is required (apt-get install wrk)" >&2; exit 1; }
EBPF_ROUNDS=${EBPF_ROUNDS:-10} go test -run '^$' -bench . -benchtime 1x -timeout 10m ./bench/ebpf/
