#!/bin/sh
# Policy benchmarks: per-policy overhead on the built-in data plane (ns and
# allocations per request) and throughput through the real data plane with
# no policy, a per-replica rate limit, and a Redis-backed (clusterizable)
# rate limit. Needs redis-server (Debian package redis-server).
#
#   bench/policy/run.sh            # COUNT=5 BENCHTIME=3s by default
set -eu
cd "$(dirname "$0")/../.."
COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-3s}

echo "== per-policy overhead: one request through one policy's middleware"
go test -run '^$' -bench 'BenchmarkPolicyOverhead|BenchmarkRateLimitRedis' -benchmem ./policy/ | grep -E '^Benchmark'

echo
echo "== throughput through the built-in data plane (8 concurrent clients per core, real upstream)"
# Rounds interleave the three cases in time, so a load spike on a shared
# machine hits all of them alike; the medians are compared.
go test -c -o /tmp/flexgw-policy-e2e.test ./policy/e2e
out=""
i=0
while [ "$i" -lt "$COUNT" ]; do
	round=$(/tmp/flexgw-policy-e2e.test -test.run '^$' -test.bench BenchmarkThroughput -test.benchtime "$BENCHTIME" -test.benchmem)
	echo "$round" | grep -E '^Benchmark'
	out="$out
$round"
	i=$((i + 1))
done
rm -f /tmp/flexgw-policy-e2e.test

median() {
	echo "$out" | grep "BenchmarkThroughput/$1-" |
		awk '{for (i = 2; i <= NF; i++) if ($i == "req/s") print $(i-1)}' | sort -n |
		awk '{v[NR] = $1} END {if (NR == 0) print 0; else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2] + v[NR/2+1]) / 2}'
}
base=$(median no-policy)
local=$(median rate-limit-local)
redis=$(median rate-limit-redis)
echo
echo "== medians of $COUNT runs (req/s)"
awk -v b="$base" -v l="$local" -v r="$redis" 'BEGIN {
	printf "no policy            %8.0f\n", b
	printf "rate limit, local    %8.0f  (%.0f%% of no policy)\n", l, 100 * l / b
	printf "rate limit, Redis    %8.0f  (%.0f%% of no policy; target >= 80%%)\n", r, 100 * r / b
}'
