#!/usr/bin/env bash
# flexgw's built-in data plane vs nginx in front of the same upstream, same
# wrk keep-alive load: req/s, p50/p99, CPU per request, peak RSS and ratios.
set -euo pipefail
cd "$(dirname "$0")/../.."
go run ./bench/proxy -rounds "${ROUNDS:-5}"
