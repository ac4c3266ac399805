#!/usr/bin/env bash
# Translate and push 1,000 ApiInstances / 5,000 routes: time per full
# translation, config change to new xDS version, and peak RSS.
#
# Each benchmark runs in its own process: peak RSS is the process's VmHWM,
# so in one shared process every later benchmark would inherit the peak of
# the ones before it.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/xds.test" ./envoy/xds
out=$tmp/bench.txt
for b in Translate1000APIs5000Routes Push1000APIs5000Routes ConfigDirToSnapshot1000APIs; do
	"$tmp/xds.test" -test.run '^$' -test.bench "^Benchmark$b\$" -test.benchtime "${BENCHTIME:-5x}" -test.benchmem |
		grep '^Benchmark' | tee -a "$out"
done
echo
echo "== Envoy translation, 1,000 APIs / 5,000 routes (targets: < 1 s, peak RSS <= 150 MiB)"
awk '/^Benchmark/ {
	name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
	for (i = 2; i < NF; i++) {
		if ($(i + 1) == "ns/op") ms = $i / 1e6
		if ($(i + 1) == "cpu-ms/op") cpu = $i
		if ($(i + 1) == "peak-RSS-MiB") rss = $i
	}
	verdict = ""
	if (name == "Translate1000APIs5000Routes") verdict = sprintf("  time %s, RSS %s", (ms < 1000 ? "PASS" : "OVER TARGET"), (rss <= 150 ? "PASS" : "OVER TARGET"))
	printf "%-30s %8.0f ms/op %8.0f cpu-ms/op %7.1f MiB peak RSS%s\n", name, ms, cpu, rss, verdict
}' "$out"
