#!/bin/sh
# deb.sh OUTDIR [BINARY] — build the flexgw .deb into OUTDIR with dpkg-deb.
#
# BINARY defaults to bin/flexgw (`make build`: version flags, stripped); it
# is packaged as it is, never rebuilt. VERSION (default 0.0.0~dev) and
# ARCH (default: dpkg --print-architecture) set the package version and
# architecture. The package holds the same files as install.sh installs;
# /etc files are conffiles (kept on upgrade and remove, gone on purge).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: deploy/deb.sh OUTDIR [BINARY]}
bin=${2:-$root/bin/flexgw}
if [ ! -x "$bin" ]; then
	echo "deb.sh: $bin: no such executable; run make build first" >&2
	exit 1
fi
VERSION=${VERSION:-0.0.0~dev}
ARCH=${ARCH:-$(dpkg --print-architecture)}
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
DESTDIR=$stage/root PREFIX=/usr "$root/deploy/install.sh" "$bin"
pkg=$stage/root
mkdir -p "$pkg/DEBIAN"
(cd "$pkg" && find etc -type f | sed 's#^#/#' | sort) >"$pkg/DEBIAN/conffiles"
(cd "$pkg" && find usr -type f -exec md5sum {} + | sort -k2) >"$pkg/DEBIAN/md5sums"
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: flexgw
Version: $VERSION
Architecture: $ARCH
Section: net
Priority: optional
Installed-Size: $size
Maintainer: flexgw maintainers <flexgw@example.invalid>
Homepage: https://github.com/flexgw/flexgw
Description: Observability-first API gateway
 Runs Flex Gateway Local Mode configurations with a built-in Go data plane
 or Envoy, and measures TCP latency in the kernel with an eBPF probe.
CONTROL
chmod 0644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/conffiles" "$pkg/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zgzip --build "$pkg" "$out/flexgw_${VERSION}_${ARCH}.deb" >/dev/null
echo "$out/flexgw_${VERSION}_${ARCH}.deb"
