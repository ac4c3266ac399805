#!/usr/bin/env bash
# Runs the Gateway API conformance suite (the GATEWAY-HTTP core features:
# Gateway, HTTPRoute, ReferenceGrant) against flexgw with a real etcd and
# kube-apiserver (scripts/k8s-tools.sh's cache), and writes the pass/fail
# table to $FLEXGW_CONFORMANCE_RESULTS (default test/conformance/results.md).
# It runs as root: the test re-runs itself in its own network namespace
# (unshare --net), where the gateway binds the base Gateways' ports 80 and
# 443 and every stand-in Pod gets an address, so runs don't collide.
#   test/conformance/run.sh                         every core test
#   test/conformance/run.sh -run-test=HTTPRouteSimpleSameNamespace   one test
#   test/conformance/run.sh -supported-features=Gateway,HTTPRoute,HTTPRouteQueryParamMatching
# Extra arguments are the suite's own flags. The exit status is go test's:
# non-zero while any test fails.
set -euo pipefail
cd "$(dirname "$0")"
../../scripts/k8s-tools.sh >/dev/null
export FLEXGW_CONFORMANCE_RESULTS=${FLEXGW_CONFORMANCE_RESULTS:-$PWD/results.md}
log=${FLEXGW_CONFORMANCE_LOG:-/tmp/flexgw-conformance.log}
echo "conformance: full log in $log, results in $FLEXGW_CONFORMANCE_RESULTS" >&2
set +e
go test -count=1 -timeout 60m -run '^TestConformance$' -v . -args "$@" >"$log" 2>&1
rc=$?
set -e
grep -E '^conformance: [0-9]+ passed' "$log" || tail -40 "$log"
[[ -f $FLEXGW_CONFORMANCE_RESULTS ]] && cat "$FLEXGW_CONFORMANCE_RESULTS"
exit $rc
