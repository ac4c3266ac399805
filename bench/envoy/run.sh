#!/usr/bin/env bash
# Translate and push 1,000 ApiInstances / 5,000 routes: time per full
# translation, config change to new xDS version, and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/../.."
go test -run '^$' -bench . -benchtime "${BENCHTIME:-5x}" -benchmem ./envoy/xds ./envoy/translate
