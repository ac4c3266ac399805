#!/usr/bin/env bash
# `make bench`: every benchmark side by side with its peer, printed as ratios.
# Each part is a script under bench/<area>/run.sh; a failing part is reported
# and the others still run.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for script in bench/*/run.sh; do
  [[ -x "$script" ]] || continue
  area=$(basename "$(dirname "$script")")
  echo
  echo "=== bench: $area ==="
  if ! "$script"; then
    echo "bench $area: FAILED"
    status=1
  fi
done
exit $status
