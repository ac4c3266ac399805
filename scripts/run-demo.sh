#!/usr/bin/env bash
# `make run`: a demo upstream on 127.0.0.1:9000 and flexgw serving examples/.
set -euo pipefail
cd "$(dirname "$0")/.."
./bin/demo-upstream -addr 127.0.0.1:9000 &
up=$!
trap 'kill $up 2>/dev/null || true' EXIT
echo "demo upstream on 127.0.0.1:9000; gateway starting on examples/ (Ctrl-C stops both)"
echo "try:  curl -s localhost:8081/orders/42"
./bin/flexgw run --config examples --state-dir "${TMPDIR:-/tmp}/flexgw-demo" --access-log - "$@"
