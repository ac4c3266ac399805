#!/bin/sh
# install.sh [BINARY] — `make install`: the binary, its man page and shell
# completions, the systemd unit, its /etc/default/flexgw and a default
# /etc/flexgw/conf.d: the files of the .deb.
#
# BINARY defaults to bin/flexgw, the binary `make build` made with the
# version flags and stripped; it is installed as it is, never rebuilt.
# DESTDIR (staged installs) and PREFIX (default /usr) are honoured. Existing
# configuration (conf.d/README, /etc/default/flexgw) is kept. Afterwards:
# systemctl daemon-reload && systemctl enable --now flexgw.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr}
bin=${1:-$root/bin/flexgw}
if [ ! -x "$bin" ]; then
	echo "install.sh: $bin: no such executable; run make build first" >&2
	exit 1
fi
install -D -m 0755 "$bin" "$DESTDIR$PREFIX/bin/flexgw"
# The unit runs /usr/bin/flexgw; point it at PREFIX when that differs.
install -d "$DESTDIR$PREFIX/lib/systemd/system"
sed "s#/usr/bin/flexgw#$PREFIX/bin/flexgw#" "$root/deploy/flexgw.service" >"$DESTDIR$PREFIX/lib/systemd/system/flexgw.service"
chmod 0644 "$DESTDIR$PREFIX/lib/systemd/system/flexgw.service"
install -d -m 0755 "$DESTDIR/etc/flexgw/conf.d" "$DESTDIR/etc/default"
[ -e "$DESTDIR/etc/flexgw/conf.d/README" ] || install -m 0644 "$root/deploy/conf.d/README" "$DESTDIR/etc/flexgw/conf.d/README"
[ -e "$DESTDIR/etc/default/flexgw" ] || install -m 0644 "$root/deploy/default/flexgw" "$DESTDIR/etc/default/flexgw"
# The Fluent Bit output plugin (`make plugin`, beside the binary): the
# agent's --fluent-bit-plugin default. Its name must not start with flb-
# (Fluent Bit loads those as C plugins and rejects a Go one).
plugin=$(dirname "$bin")/out_flexgw.so
if [ ! -f "$plugin" ]; then
	echo "install.sh: $plugin: no such file; run make plugin first" >&2
	exit 1
fi
install -D -m 0644 "$plugin" "$DESTDIR$PREFIX/lib/flexgw/out_flexgw.so"
install -D -m 0644 "$root/docs/ebpf.md" "$DESTDIR$PREFIX/share/doc/flexgw/ebpf.md"
# The man page and completions come from the binary's own command
# declarations (flexgw man / completion), so they match it.
share=$DESTDIR$PREFIX/share
install -d "$share/man/man1" "$share/bash-completion/completions" "$share/zsh/vendor-completions" "$share/fish/vendor_completions.d"
"$bin" man | gzip -9n >"$share/man/man1/flexgw.1.gz"
"$bin" completion bash >"$share/bash-completion/completions/flexgw"
"$bin" completion zsh >"$share/zsh/vendor-completions/_flexgw"
"$bin" completion fish >"$share/fish/vendor_completions.d/flexgw.fish"
chmod 0644 "$share/man/man1/flexgw.1.gz" "$share/bash-completion/completions/flexgw" "$share/zsh/vendor-completions/_flexgw" "$share/fish/vendor_completions.d/flexgw.fish"
