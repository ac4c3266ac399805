#!/usr/bin/env bash
# Builds the Go tools the tests run (once; later runs reuse the binary) into
# a cache outside the work tree, and prints the path of the one asked for.
#   scripts/tools.sh                    build every tool
#   scripts/tools.sh dashboard-linter   build it if missing, print its path
# The cache is $FLEXGW_TOOLS_CACHE (default ~/.cache/flexgw-tools); each
# build sits in a directory named after a hash of its go.mod and go.sum, so
# a version bump rebuilds and an unchanged one never does.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${FLEXGW_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flexgw-tools}

# dashboard-linter: Grafana's linter for the dashboards/ JSON, at the
# version pinned in scripts/tools/dashboard-linter/go.mod (fetched through
# the Go module proxy).
dashboard_linter() {
  local src=$root/scripts/tools/dashboard-linter
  local key
  key=$(cat "$src/go.mod" "$src/go.sum" "$src"/dashv2/go.mod "$src"/dashv2/pkg/apis/dashboard/v2/*.go | sha256sum | cut -c1-16)
  local bin=$cache/dashboard-linter-$key/dashboard-linter
  if [[ ! -x $bin ]]; then
    echo "tools: building dashboard-linter (once) into ${bin%/*}" >&2
    mkdir -p "${bin%/*}"
    (cd "$src" && GOFLAGS=-mod=readonly go build -o "$bin.tmp" github.com/grafana/dashboard-linter) >&2
    mv "$bin.tmp" "$bin"
  fi
  echo "$bin"
}

case "${1:-all}" in
  dashboard-linter) dashboard_linter ;;
  all) dashboard_linter >/dev/null ;;
  *) echo "tools: unknown tool $1" >&2; exit 2 ;;
esac
