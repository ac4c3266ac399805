#!/bin/sh
# deb.sh OUTDIR [BINARY [PLUGIN]] — build the flexgw .deb into OUTDIR with nfpm.
#
# Without BINARY it builds ./cmd/flexgw (static, CGO_ENABLED=0); without
# PLUGIN the Fluent Bit output plugin (cgo, `make plugin`), installed as
# /usr/lib/flexgw/out_flexgw.so, the --fluent-bit-plugin default. VERSION
# (default 0.0.0~dev) and GOARCH (default: go env GOARCH) pick the package
# version and architecture. nfpm runs as a pinned Go module through the Go
# proxy, so nothing needs installing.
set -eu
NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: deploy/deb.sh OUTDIR [BINARY]}
mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/dist" "$stage/deploy/conf.d" "$stage/docs"
if [ -n "${2:-}" ]; then
	cp "$2" "$stage/dist/flexgw"
else
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$stage/dist/flexgw" ./cmd/flexgw)
fi
if [ -n "${3:-}" ]; then
	cp "$3" "$stage/dist/out_flexgw.so"
else
	(cd "$root" && make -s plugin BIN="$stage/dist")
fi
cp "$root/deploy/nfpm.yaml" "$root/deploy/flexgw.service" "$stage/deploy/"
cp "$root/deploy/conf.d/README" "$stage/deploy/conf.d/"
cp "$root/docs/ebpf.md" "$stage/docs/"
export VERSION="${VERSION:-0.0.0~dev}"
export GOARCH="${GOARCH:-$(go env GOARCH)}"
cd "$stage"
go run "$NFPM" pkg --config deploy/nfpm.yaml --packager deb --target "$out/"
