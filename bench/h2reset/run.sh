#!/usr/bin/env bash
# HTTP/2 rapid reset against the built-in data plane: streams reset, the
# connections the gateway closed, upstream requests, CPU and memory.
# BASELINE=/path/to/older/bench-proxy-binary runs that build first.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -n "${BASELINE:-}" ]]; then
  echo "baseline ($BASELINE):"
  go run ./bench/h2reset -gateway "$BASELINE"
  echo
fi
go run ./bench/h2reset
