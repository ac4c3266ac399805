#!/usr/bin/env bash
# Gateway throughput with the kernel probe on vs off, and the probe's own
# CPU (kernel BPF run-time counters). Needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
go test -run '^$' -bench . -benchtime 1x ./bench/ebpf/
