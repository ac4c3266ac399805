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
go test -run '^$' -bench 'BenchmarkPolicyOverhead|BenchmarkNewPolicies|BenchmarkServicePolicies|BenchmarkHTTPCaching|BenchmarkRateLimitRedis' -benchmem ./policy/ ./policy/native/ | grep -E '^Benchmark'

echo
echo "== through the real built-in data plane, one client: proxied vs http-caching-flex hit, unsigned vs native-aws-signature-flex"
go test -run '^$' -bench 'BenchmarkHTTPCachingDataPlane|BenchmarkAWSSignature' -benchmem -count 3 ./policy/e2e/ | grep -E '^Benchmark'

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

# median CASE METRIC: the median of METRIC (the unit after the number,
# e.g. req/s) over the rounds of BenchmarkThroughput/CASE.
median() {
	echo "$out" | grep "BenchmarkThroughput/$1-" |
		awk -v m="$2" '{for (i = 2; i <= NF; i++) if ($i == m) print $(i-1)}' | sort -n |
		awk '{v[NR] = $1} END {if (NR == 0) print 0; else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2] + v[NR/2+1]) / 2}'
}
base=$(median no-policy req/s)
local=$(median rate-limit-local req/s)
redis=$(median rate-limit-redis req/s)
echo
echo "== medians of $COUNT runs (req/s)"
awk -v b="$base" -v l="$local" -v r="$redis" 'BEGIN {
	printf "no policy            %8.0f\n", b
	printf "rate limit, local    %8.0f  (%.0f%% of no policy)\n", l, 100 * l / b
	printf "rate limit, Redis    %8.0f  (%.0f%% of no policy; target >= 85%%)\n", r, 100 * r / b
}'
# On a shared machine req/s swings with other load; the CPU a request
# costs (this process: load generator, data plane, upstream; plus
# redis-server) moves much less, and its inverse is the throughput a
# CPU-bound machine would reach.
cb=$(median no-policy proc-µs/req)
cl=$(median rate-limit-local proc-µs/req)
cr=$(median rate-limit-redis proc-µs/req)
rr=$(median rate-limit-redis redis-µs/req)
rt=$(median rate-limit-redis redis-reads/req)
echo
echo "== medians of $COUNT runs (CPU per request, µs)"
awk -v b="$cb" -v l="$cl" -v r="$cr" -v s="$rr" -v t="$rt" 'BEGIN {
	printf "no policy            %6.1f\n", b
	printf "rate limit, local    %6.1f  (no policy / this: %.0f%%)\n", l, 100 * b / l
	printf "rate limit, Redis    %6.1f + redis-server %.1f = %.1f  (no policy / this: %.0f%%; %.2f Redis round trips per request)\n", r, s, r + s, 100 * b / (r + s), t
}'
