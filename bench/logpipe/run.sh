#!/bin/sh
# logpipe benchmarks (called by `make bench`). Prints, per exporter, records/s
# from JSON access-log lines to gzip request bodies on one core (wall clock
# and per CPU-second: on a shared machine the latter is the one-core figure),
# the Fluent Bit plugin's flush path (msgpack chunk → durable queue), and the
# Go heap while an aggregator is down (backlog on disk, heap flat).
set -eu
cd "$(dirname "$0")/../.."
go test -run '^$' -bench 'BenchmarkLinesToBodies|BenchmarkPluginFlush' -benchtime "${BENCHTIME:-3s}" -cpu 1 ./logpipe/
go test -run '^$' -bench 'BenchmarkBacklogMemory' -benchtime 1x -cpu 1 ./logpipe/
