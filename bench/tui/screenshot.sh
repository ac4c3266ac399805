#!/usr/bin/env bash
# bench/tui/screenshot.sh — a PNG of `flexgw top` for the README.
#
#   bench/tui/screenshot.sh [ADMIN_URL] [OUT.png]
#
# With ADMIN_URL, runs `flexgw top --admin ADMIN_URL` (the binary from
# $FLEXGW, default ./bin/flexgw, else `go run ./cmd/flexgw`) against a real
# gateway; without, the stand-in demo (tui/testdata/topdemo) with synthetic
# traffic. tmux captures the pane with colours, bench/tui/ansi2svg turns it
# into SVG, and rsvg-convert (apt: librsvg2-bin) or ImageMagick's convert
# (apt: imagemagick) renders the PNG. Fonts: apt fonts-dejavu-core.
# Set KEYS to send keys before the capture (e.g. KEYS="space" to expand).
set -euo pipefail
cd "$(dirname "$0")/../.."
url=${1:-}
out=${2:-docs/top.png}
tmp=$(mktemp -d)
sock="flexgw-shot-$$"
trap 'tmux -L "$sock" kill-server 2>/dev/null || true; rm -rf "$tmp"' EXIT

go build -o "$tmp/ansi2svg" ./bench/tui/ansi2svg
if [ -n "$url" ]; then
	bin=${FLEXGW:-./bin/flexgw}
	if [ -x "$bin" ]; then cmd="$bin top --admin $url"; else go build -o "$tmp/flexgw" ./cmd/flexgw; cmd="$tmp/flexgw top --admin $url"; fi
else
	go build -o "$tmp/topdemo" ./tui/testdata/topdemo
	cmd="$tmp/topdemo -refresh 500ms"
fi
tmux -L "$sock" -f /dev/null new-session -d -s shot -x "${COLS:-140}" -y "${ROWS:-34}" "exec env TERM=xterm-256color COLORTERM=truecolor $cmd"
# Let sparklines fill: a few seconds of history.
sleep "${WAIT:-12}"
for k in ${KEYS:-}; do tmux -L "$sock" send-keys -t shot "$k"; sleep 1; done
tmux -L "$sock" capture-pane -e -p -t shot >"$tmp/screen.ansi"
"$tmp/ansi2svg" <"$tmp/screen.ansi" >"$tmp/screen.svg"
if command -v rsvg-convert >/dev/null; then
	rsvg-convert -o "$out" "$tmp/screen.svg"
elif convert -version 2>/dev/null | grep -q ImageMagick; then
	convert -density 144 "$tmp/screen.svg" "$out"
else
	cp "$tmp/screen.svg" "${out%.png}.svg"
	echo "no SVG renderer (apt-get install librsvg2-bin): wrote ${out%.png}.svg" >&2
	exit 0
fi
echo "wrote $out"
