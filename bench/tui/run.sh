#!/usr/bin/env bash
# bench/tui/run.sh — how much `flexgw top` costs with 1,000 routes at a
# 100 ms refresh (issue 7 targets: < 5% of a core, < 10 ms per frame).
#
#  1. go test -bench in ./tui: CPU ms per refresh (decode + rebuild +
#     render) and per frame render, with 50 APIs x 20 routes.
#  2. A real terminal: tmux runs the interactive TUI (tui/testdata/topdemo)
#     against a stand-in gateway in another process (stats.Stats fed with
#     synthetic traffic, 50 APIs x 20 routes); the TUI's CPU time is read
#     from /proc over DUR seconds: APIs collapsed, one API expanded, all
#     expanded, the Logs view following a 2,000 records/s tail, and paused.
#
# Usage: bench/tui/run.sh            (DUR=20 by default; needs tmux)
#   REFRESH=1s       the TUI's refresh (default 100ms)
#   SKIP_GOBENCH=1   only the terminal run
#   PROFILE=FILE     write the TUI's CPU profile over all scenarios
#                    (go tool pprof -top FILE)
set -euo pipefail
PROFILE=${PROFILE:+$(realpath -m "$PROFILE")}
cd "$(dirname "$0")/../.."
DUR=${DUR:-20}

if [ -z "${SKIP_GOBENCH:-}" ]; then
echo "== go test -bench (tui, 1,000 routes)"
go test -run '^$' -bench . -benchtime 300x ./tui/ | grep -E '^Benchmark|^ok'
fi

tmp=$(mktemp -d)
sock="flexgw-tui-bench-$$"
gw=""
cleanup() {
	tmux -L "$sock" kill-server 2>/dev/null || true
	if [ -n "$gw" ]; then kill "$gw" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/topdemo" ./tui/testdata/topdemo
"$tmp/topdemo" -serve 127.0.0.1:0 -apis 50 -routes 20 -rps 2000 >"$tmp/gw.out" &
gw=$!
for _ in $(seq 100); do grep -q '^admin ' "$tmp/gw.out" && break; sleep 0.1; done
url=$(awk '/^admin /{print $2}' "$tmp/gw.out")
[ -n "$url" ] || { echo "stand-in gateway did not start" >&2; exit 1; }

tmux -L "$sock" -f /dev/null new-session -d -s bench -x 200 -y 50 "exec env ${TUI_ENV:-} $tmp/topdemo -admin $url -refresh ${REFRESH:-100ms}${PROFILE:+ -cpuprofile $PROFILE}"
pid=$(tmux -L "$sock" list-panes -t bench -F '#{pane_pid}')
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

measure() {
	local label=$1
	sleep 2
	local a b
	a=$(cpu)
	sleep "$DUR"
	b=$(cpu)
	awk -v a="$a" -v b="$b" -v t="$ticks" -v d="$DUR" -v l="$label" \
		'BEGIN { printf "%-28s %5.2f%% of a core (%d ticks in %ds)\n", l, (b-a)/t/d*100, b-a, d }'
}

echo "== interactive TUI in tmux, 200x50, 1,000 routes, refresh ${REFRESH:-100ms}, ${DUR}s each"
sleep 2
measure "APIs collapsed"
tmux -L "$sock" send-keys -t bench space
measure "one API expanded"
tmux -L "$sock" send-keys -t bench E
measure "all APIs expanded"
tmux -L "$sock" send-keys -t bench 3
measure "logs view (2,000 rec/s)"
tmux -L "$sock" send-keys -t bench p
measure "logs view paused"
tmux -L "$sock" send-keys -t bench q
# The TUI writes its profile as it exits.
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
