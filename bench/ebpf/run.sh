#!/usr/bin/env bash
# Gateway throughput with the kernel probe on vs off, and the probe's own
# CPU (kernel BPF run-time counters). Needs root.
#   EBPF_ROUNDS=12 EBPF_ROUND_DUR=1s bench/ebpf/run.sh   # the defaults
set -euo pipefail
cd "$(dirname "$0")/../.."
EBPF_ROUNDS=${EBPF_ROUNDS:-12} go test -run '^$' -bench . -benchtime 1x ./bench/ebpf/
