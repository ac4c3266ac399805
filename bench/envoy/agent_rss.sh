#!/usr/bin/env bash
# The real agent's memory with 1,000 ApiInstances / 5,000 routes on the xDS
# data plane (target: peak RSS <= 150 MiB): RSS after start, then peak RSS
# across reloads, when the old snapshot and translation are still held while
# the new ones are built.
#
# FLEXGW_BIN runs a given binary instead of building ./cmd/flexgw (to
# compare two builds); RELOADS sets the number of reloads (default 3);
# GOMEMLIMIT and GODEBUG (e.g. gctrace=1) reach the agent; KEEP_LOG=FILE
# keeps its log.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
pid=
cleanup() {
	[[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
bin=${FLEXGW_BIN:-}
if [[ -z "$bin" ]]; then
	bin=$tmp/flexgw
	go build -o "$bin" ./cmd/flexgw
fi
mkdir "$tmp/conf.d"
for ((i = 0; i < 1000; i++)); do
	printf -- '---\napiVersion: gateway.mulesoft.com/v1alpha1\nkind: ApiInstance\nmetadata:\n  name: api-%d\nspec:\n  address: http://0.0.0.0:%d/api-%d\n  services:\n    svc:\n      address: http://10.0.%d.%d:8080\n      routes:\n' \
		"$i" $((8000 + i % 10)) "$i" $((i / 250)) $((i % 250 + 1))
	for ((r = 0; r < 5; r++)); do
		printf '        - rules:\n            - path: /res%d(/.*)?\n              methods: GET|POST\n          config:\n            destinationPath: /v1\n' "$r"
	done
done >"$tmp/conf.d/apis.yaml"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
admin=127.0.0.1:$(free_port)
GODEBUG=${GODEBUG:-} "$bin" run --config "$tmp/conf.d" --dataplane xds --xds-address "127.0.0.1:$(free_port)" --admin "$admin" \
	--ebpf off --access-log off --state-dir "$tmp/state" >"$tmp/agent.log" 2>&1 &
pid=$!

# wait_version N: poll the admin API until snapshot N is pushed (60 s deadline).
wait_version() {
	local deadline=$((SECONDS + 60))
	until curl -fsS "http://$admin/api/v1/status" 2>/dev/null | grep -q "\"snapshotVersion\": $1,"; do
		if ((SECONDS > deadline)) || ! kill -0 "$pid" 2>/dev/null; then
			echo "agent did not reach snapshot $1; its log:" >&2
			cat "$tmp/agent.log" >&2
			return 1
		fi
		sleep 0.2
	done
}
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$pid/status"; }

wait_version 1
start_rss=$(kib VmRSS)
start_hwm=$(kib VmHWM)
reloads=${RELOADS:-3}
for ((n = 1; n <= reloads; n++)); do
	# a real change (the destination path), so the snapshot hash differs
	sed -i "s#destinationPath: /v$n\$#destinationPath: /v$((n + 1))#" "$tmp/conf.d/apis.yaml"
	wait_version $((n + 1))
done
hwm=$(kib VmHWM)
[[ -n "${KEEP_LOG:-}" ]] && cp "$tmp/agent.log" "$KEEP_LOG"
echo
echo "== flexgw run --dataplane xds, 1,000 APIs / 5,000 routes (target: peak RSS <= 150 MiB)"
awk -v s="$start_rss" -v sh="$start_hwm" -v h="$hwm" -v n="$reloads" 'BEGIN {
	printf "agent RSS after start %6.1f MiB (peak %.1f), peak across %d reloads %6.1f MiB  %s\n",
		s / 1024, sh / 1024, n, h / 1024, (h / 1024 <= 150 ? "PASS" : "OVER TARGET")
}'
