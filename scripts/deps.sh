#!/usr/bin/env bash
# Installs what flexgw's tests and benchmarks need on a fresh Debian machine,
# skipping everything already present. Safe to run repeatedly.
#   scripts/deps.sh test    packages the test suite needs
#   scripts/deps.sh bench   plus the peers the benchmarks compare against
set -euo pipefail

want=(
  redis-server:redis-server   # shared storage for clusterizable policies
  promtool:prometheus         # promtool check rules / metrics
  clang:clang                 # eBPF sources (make generate) and the plugin's C harness
  llvm-strip:llvm
  bpftool:bpftool
  tmux:tmux                   # the interactive `flexgw top` test
  gcc:gcc                     # cgo: the Fluent Bit plugin and its C ABI test
  dpkg-deb:dpkg               # make deb and its test
  systemd-analyze:systemd     # verify / security of the unit
  strace:strace               # the unit's system call filter against what flexgw calls
  zsh:zsh                     # flexgw completion zsh, driven in the real shell
  fish:fish                   # flexgw completion fish
  groff:groff-base            # the man page is formatted in its test
  etcd:etcd-server            # the Kubernetes tests' API server store (scripts/k8s-tools.sh)
  slapd:slapd                 # ldap-authentication-flex's tests start their own OpenLDAP server
  ldapadd:ldap-utils
)
if [[ "${1:-test}" == "bench" ]]; then
  want+=(nginx:nginx-light wrk:wrk h2load:nghttp2-client haproxy:haproxy hyperfine:hyperfine)
fi

missing=()
for entry in "${want[@]}"; do
  bin=${entry%%:*} pkg=${entry##*:}
  if ! command -v "$bin" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$bin ]]; then
    missing+=("$pkg")
  fi
done
# libbpf headers are needed by `make generate` only, checked by file.
[[ -e /usr/include/bpf/bpf_helpers.h ]] || missing+=(libbpf-dev)
# Libraries the real Fluent Bit the tests run (FLUENT_BIT, see
# ../shared/tools/fluent-bit/README.md) links against; checked by package.
for lib in libyaml-0-2 libsqlite3-0 libssl3; do
  dpkg-query -W -f='${Status}' "$lib" 2>/dev/null | grep -q "ok installed" || missing+=("$lib")
done

if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The eBPF probe's tracepoints need tracefs; mount it when missing and allowed.
if [[ $(id -u) -eq 0 && ! -e /sys/kernel/tracing/events ]]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
fi
# Go tools the tests run (dashboard-linter), built once into a cache.
"$(dirname "$0")/tools.sh"
echo "deps: ok"
