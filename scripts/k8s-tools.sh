#!/usr/bin/env bash
# Builds the Kubernetes binaries the Kubernetes tests run against — kube-apiserver,
# kubectl, helm — and links etcd (Debian's etcd-server, installed by deps.sh) into one cache
# directory outside the work tree, keyed by version, so only the first run pays the
# cold build (about 15-20 minutes on 2 cores for kube-apiserver). Prints the directory.
#   scripts/k8s-tools.sh            build what is missing, print the cache dir (`make test`
#                                   runs this: kube/'s tests need all of it)
#   scripts/k8s-tools.sh helm       only helm (enough to lint and render the chart)
# FLEXGW_K8S_CACHE overrides the cache root (default /var/cache/flexgw-k8s).
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
HELM_VERSION=${HELM_VERSION:-v3.22.0}
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
staging="v0.${K8S_VERSION#v1.}"      # k8s.io/api etc. are tagged v0.<minor>.<patch>
root=${FLEXGW_K8S_CACHE:-/var/cache/flexgw-k8s}
dir=$root/$K8S_VERSION
mkdir -p "$dir"
GO=${GO:-go}
log() { echo "k8s-tools: $*" >&2; }

# One build at a time per cache dir: parallel `make test` runs wait for the first.
exec 9>"$dir/.lock"
flock 9

# scratch sets up (once) a module requiring k8s.io/kubernetes, in which
# its commands build.
work=""
scratch() {
  [[ -n $work ]] && return
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (
    cd "$work"
    $GO mod init flexgw.local/k8s-tools >/dev/null 2>&1
    # k8s.io/kubernetes points its staging modules at ./staging; replace each one
    # with its published v0 tag. The list comes from its own go.mod.
    gomod=$($GO mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
    [[ -s $gomod ]] || { log "cannot download k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
    mods=$(sed -n 's#^\s*\(k8s\.io/[^ ]*\) => \./staging/.*#\1#p' "$gomod")
    [[ -n $mods ]] || { log "no staging replaces found in $gomod"; exit 1; }
    args=(-require="k8s.io/kubernetes@$K8S_VERSION")
    for m in $mods; do args+=(-replace="$m=$m@$staging"); done
    $GO mod edit "${args[@]}"
    $GO mod edit -go="$(sed -n 's/^go \(.*\)/\1/p' "$gomod")"
    printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kubectl"\n)\n' > tools.go
    $GO mod tidy >/dev/null
  )
}

# kbuild builds one k8s.io/kubernetes command with the version stamped in.
kbuild() {
  local name=$1 start
  [[ -x $dir/$name ]] && return
  start=$(date +%s)
  log "building $name $K8S_VERSION (kube-apiserver's cold build: 15-20 min on 2 cores)"
  scratch
  local ld="-s -w" date
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  (cd "$work" && CGO_ENABLED=0 $GO build -trimpath -ldflags "$ld" -o "$dir/$name.tmp" "k8s.io/kubernetes/cmd/$name")
  mv "$dir/$name.tmp" "$dir/$name"
  log "$name built in $(($(date +%s) - start)) s"
}
want=${1:-all}
if [[ $want == all ]]; then
  kbuild kube-apiserver
  kbuild kubectl
fi

if [[ ! -x $dir/helm ]]; then
  start=$(date +%s)
  log "building helm $HELM_VERSION"
  # Without the Kubernetes version flags helm assumes Kubernetes 1.20 for
  # .Capabilities and lint; without the version flag it reports no version.
  ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
  ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
  GOBIN=$dir/.helm-bin CGO_ENABLED=0 $GO install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$dir/.helm-bin/helm" "$dir/helm" && rmdir "$dir/.helm-bin"
  log "helm built in $(($(date +%s) - start)) s"
fi

if [[ $want == all && ! -x $dir/etcd ]]; then
  etcd=$(command -v etcd || true)
  [[ -n $etcd ]] || { log "etcd missing: run scripts/deps.sh (Debian etcd-server)"; exit 1; }
  ln -sf "$etcd" "$dir/etcd"
fi
echo "$dir"
