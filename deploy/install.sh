#!/bin/sh
# install.sh [BINARY [PLUGIN]] — `make install`: the binary, the Fluent Bit
# output plugin, the systemd unit and a default /etc/flexgw/conf.d, the same
# files as the .deb.
#
# DESTDIR (staged installs) and PREFIX (default /usr) are honoured. An
# existing conf.d README is kept. Afterwards: systemctl daemon-reload &&
# systemctl enable --now flexgw.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr}
bin=${1:-}
if [ -z "$bin" ]; then
	bin=$(mktemp)
	trap 'rm -f "$bin"' EXIT
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$bin" ./cmd/flexgw)
fi
install -D -m 0755 "$bin" "$DESTDIR$PREFIX/bin/flexgw"
plugin=${2:-}
if [ -z "$plugin" ]; then
	pdir=$(mktemp -d)
	(cd "$root" && make -s plugin BIN="$pdir")
	plugin=$pdir/out_flexgw.so
fi
install -D -m 0644 "$plugin" "$DESTDIR$PREFIX/lib/flexgw/out_flexgw.so"
[ -z "${pdir:-}" ] || rm -rf "$pdir"
# The unit runs /usr/bin/flexgw; point it at PREFIX when that differs.
install -d "$DESTDIR$PREFIX/lib/systemd/system"
sed "s#/usr/bin/flexgw#$PREFIX/bin/flexgw#" "$root/deploy/flexgw.service" >"$DESTDIR$PREFIX/lib/systemd/system/flexgw.service"
chmod 0644 "$DESTDIR$PREFIX/lib/systemd/system/flexgw.service"
install -d -m 0755 "$DESTDIR/etc/flexgw/conf.d"
[ -e "$DESTDIR/etc/flexgw/conf.d/README" ] || install -m 0644 "$root/deploy/conf.d/README" "$DESTDIR/etc/flexgw/conf.d/README"
install -D -m 0644 "$root/docs/ebpf.md" "$DESTDIR$PREFIX/share/doc/flexgw/ebpf.md"
