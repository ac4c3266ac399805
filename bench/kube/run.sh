#!/usr/bin/env bash
# Kubernetes benchmark of issue 14: BenchmarkApply1000 (kube/bench_test.go)
# applies 1,000 ApiInstances at once to a real kube-apiserver + etcd with a
# gateway (`flexgw run --kubernetes`, a process) watching, and measures:
# time until all are applied, all serve, all statuses say Programmed for
# their generation; the agent's RSS then; and the time one changed
# ApiInstance of the 1,000 takes to serve. Prints each round and a table.
#
#   bench/kube/run.sh            # one round
#   COUNT=3 bench/kube/run.sh    # more rounds; the table shows the median
#
# There is no peer to compare with (no other gateway reads Flex's CRDs);
# the issue's figures are absolute. The API server and etcd run on the same
# machine, so their CPU competes with the gateway's.
set -euo pipefail
cd "$(dirname "$0")/../.."

COUNT=${COUNT:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/bench.txt

# The cached kube-apiserver, kubectl and the etcd link (built once).
scripts/k8s-tools.sh all >/dev/null
go test -c -o "$tmp/kube.test" ./kube/
# The test binary builds the gateway it starts from the repo (TestMain).
(cd kube && "$tmp/kube.test" -test.run '^$' -test.bench '^BenchmarkApply1000$' -test.benchtime 1x \
	-test.count "$COUNT" -test.timeout 60m) | grep -E '^(Benchmark|ok|FAIL|---)' | tee "$out"
grep -q '^BenchmarkApply1000' "$out" || { echo "bench kube: BenchmarkApply1000 printed no result"; exit 1; }

awk '
/^BenchmarkApply1000/ {
	for (i = 3; i < NF; i += 2) { v[$(i+1), ++n[$(i+1)]] = $i }
}
function median(k,   m, a, i, j, t) {
	m = n[k]
	for (i = 1; i <= m; i++) a[i] = v[k, i]
	for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
END {
	printf "\n1,000 ApiInstances through the real API server (median of %d round(s))\n", n["apply-ms"]
	printf "  %-44s %10.1f s\n", "applied (16 parallel server-side applies)", median("apply-ms") / 1000
	printf "  %-44s %10.1f s\n", "all 1,000 served", median("all-served-ms") / 1000
	printf "  %-44s %10.1f s\n", "all statuses Programmed", median("all-status-ms") / 1000
	printf "  %-44s %10.0f MB\n", "agent RSS after", median("agent-rss-MB")
	printf "  %-44s %10.2f s\n", "one ApiInstance of 1,000 changed, until served", median("one-change-ms") / 1000
	printf "  %-44s %10.1f s\n", "(kube-apiserver + etcd start)", median("apiserver-start-ms") / 1000
}' "$out"
