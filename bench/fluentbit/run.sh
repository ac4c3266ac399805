#!/usr/bin/env bash
# Log shipping through a real Fluent Bit (FLUENT_BIT, or fluent-bit on PATH)
# and in process: records per CPU-second of the output stage (flexgw's plugin
# vs Fluent Bit's native splunk output, Fluent Bit with a null output
# subtracted), and duplicates under 30% random 503s. See main.go.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flb=${FLUENT_BIT:-$(command -v fluent-bit || true)}
# As .ci/run: the Fluent Bit build beside the clone, when there is one.
if [[ -z "$flb" && -f ../shared/tools/fluent-bit/fluent-bit ]]; then
  flb=$(realpath ../shared/tools/fluent-bit/fluent-bit)
fi
args=()
if [[ -n "$flb" ]]; then
  make -s plugin BIN="$tmp"
  args=(-fluent-bit "$flb" -plugin "$tmp/out_flexgw.so")
fi
go build -o "$tmp/bench-fluentbit" ./bench/fluentbit
"$tmp/bench-fluentbit" "${args[@]}" -rounds "${ROUNDS:-3}" "$@"
