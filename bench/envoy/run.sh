#!/usr/bin/env bash
# Translate and push 1,000 ApiInstances / 5,000 routes: time per full
# translation, config change to new xDS version, peak RSS, and what one
# translation allocates (MB/op, allocs/op) and keeps alive (the agent holds
# two translations across a reload).
#
# Each benchmark runs in its own process: peak RSS is the process's VmHWM,
# so in one shared process every later benchmark would inherit the peak of
# the ones before it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/xds.test" ./envoy/xds
go test -c -o "$tmp/translate.test" ./envoy/translate
out=$tmp/bench.txt
for b in Translate1000APIs5000Routes Push1000APIs5000Routes ConfigDirToSnapshot1000APIs; do
	"$tmp/xds.test" -test.run '^$' -test.bench "^Benchmark$b\$" -test.benchtime "${BENCHTIME:-5x}" -test.benchmem |
		grep '^Benchmark' | tee -a "$out"
done
# result-MiB: the live heap one Result keeps (Envoy + proxyless gRPC).
"$tmp/translate.test" -test.run '^$' -test.bench '^BenchmarkTranslate1000APIs5000Routes' -test.benchtime "${BENCHTIME:-5x}" -test.benchmem |
	grep '^Benchmark' | sed 's/^Benchmark/BenchmarkTranslatePkg/' | tee -a "$out"
echo
echo "== Envoy translation, 1,000 APIs / 5,000 routes (targets: < 1 s, peak RSS <= 150 MiB)"
awk '/^Benchmark/ {
	name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
	ms = cpu = rss = mb = allocs = res = ""
	for (i = 2; i < NF; i++) {
		if ($(i + 1) == "ns/op") ms = $i / 1e6
		if ($(i + 1) == "cpu-ms/op") cpu = $i
		if ($(i + 1) == "peak-RSS-MiB") rss = $i
		if ($(i + 1) == "B/op") mb = $i / 1e6
		if ($(i + 1) == "allocs/op") allocs = $i
		if ($(i + 1) == "result-MiB") res = $i
	}
	if (name ~ /^TranslatePkg/) {
		sub(/^TranslatePkg/, "", name)
		printf "  translate package %-36s %6.0f ms/op %6.1f MB/op %8d allocs/op%s\n", name, ms, mb, allocs, (res != "" ? sprintf(", result keeps %.1f MiB", res) : "")
		next
	}
	verdict = ""
	if (name == "Translate1000APIs5000Routes") verdict = sprintf("  time %s, RSS %s", (ms < 1000 ? "PASS" : "OVER TARGET"), (rss <= 150 ? "PASS" : "OVER TARGET"))
	printf "%-30s %8.0f ms/op %8.0f cpu-ms/op %7.1f MiB peak RSS %6.1f MB/op %8d allocs/op%s\n", name, ms, cpu, rss, mb, allocs, verdict
}' "$out"

# The real agent, start and reloads.
"$here/agent_rss.sh"
