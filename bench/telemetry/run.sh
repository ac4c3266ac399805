#!/usr/bin/env bash
# Telemetry benchmarks of issue 5: gateway throughput with metrics on and
# tracing at 1% sampling against both off (target: >= 95%), the per-request
# hook cost in isolation, and the cost of a /metrics scrape with 1,000
# routes. Prints median ns/op per setup and the throughput ratios.
#
#   bench/telemetry/run.sh                 # defaults
#   COUNT=10 PROXY_N=50000x bench/telemetry/run.sh
#
# Rounds are interleaved (each round runs every setup once, in turn) and
# medians over rounds are reported, so background load on a shared machine
# affects all setups alike.
set -euo pipefail
cd "$(dirname "$0")/../.."

COUNT=${COUNT:-5}
PROXY_N=${PROXY_N:-20000x}
HOOK_TIME=${HOOK_TIME:-1s}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/bench.txt

go test -c -o "$tmp/telemetry.test" ./telemetry/
go test -c -o "$tmp/metrics.test" ./telemetry/metrics/
for round in $(seq "$COUNT"); do
	echo "# round $round"
	"$tmp/telemetry.test" -test.run '^$' -test.bench 'BenchmarkProxy' -test.benchtime "$PROXY_N" | grep '^Benchmark' | tee -a "$out"
	"$tmp/telemetry.test" -test.run '^$' -test.bench 'BenchmarkHookPath' -test.benchtime "$HOOK_TIME" | grep '^Benchmark' | tee -a "$out"
done
"$tmp/metrics.test" -test.run '^$' -test.bench 'BenchmarkScrape1000Routes|BenchmarkRequestHook' -test.benchtime 2s | grep '^Benchmark' | tee -a "$out"

echo
echo "== telemetry cost (median of $COUNT interleaved rounds) =="
awk '
function median(list,   n, a, i, j, t) {
	n = split(list, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
/^Benchmark(Proxy|HookPath)\// {
	name = $1; sub(/-[0-9]+$/, "", name)
	split(name, p, "/"); bench = p[1]; setup = p[2]
	for (i = 2; i <= NF; i++) if ($(i + 1) == "ns/op") ns[bench "/" setup] = ns[bench "/" setup] " " $i
	if (!(bench "/" setup in seen)) { seen[bench "/" setup] = 1; order[++n] = bench "/" setup }
}
/^BenchmarkScrape1000Routes\// {
	name = $1; sub(/-[0-9]+$/, "", name)
	for (i = 2; i <= NF; i++) {
		if ($(i + 1) == "ns/op") ms = $i / 1e6
		if ($(i + 1) == "bytes/scrape") kb = $i / 1024
	}
	scrape[name] = sprintf("%.1f ms per scrape, %.0f KiB", ms, kb)
}
END {
	for (i = 1; i <= n; i++) med[order[i]] = median(ns[order[i]])
	for (i = 1; i <= n; i++) {
		k = order[i]; split(k, p, "/")
		base = med[p[1] "/off"]
		line = sprintf("%-40s %12.0f ns/op", k, med[k])
		if (p[1] == "BenchmarkProxy" && p[2] != "off") line = line sprintf("   throughput %.1f%% of off", 100 * base / med[k])
		if (p[1] == "BenchmarkHookPath" && p[2] != "off") line = line sprintf("   +%.0f ns per request", med[k] - base)
		print line
	}
	for (k in scrape) printf "%-40s %s\n", k, scrape[k]
	k = "BenchmarkProxy/metrics+tracing1pct"
	if (k in med) {
		r = 100 * med["BenchmarkProxy/off"] / med[k]
		printf "\nmetrics + tracing 1%%: %.1f%% of throughput with both off (target >= 95%%): %s\n", r, (r >= 95 ? "PASS" : "BELOW TARGET")
	}
}' "$out"
