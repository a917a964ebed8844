#!/usr/bin/env bash
# Provides kube-apiserver, etcd and kubectl for envtest, and prints the directory that
# holds them (the value for KUBEBUILDER_ASSETS) as its last line.
#
# setup-envtest downloads prebuilt binaries from a host this project's machines cannot
# reach, so kube-apiserver is built from source through the Go module proxy instead:
# a throwaway module requires k8s.io/kubernetes at KUBE_VERSION and maps every staging
# module to its published v0.x.y. The result is cached outside the clone, keyed by
# version, so only the first run on a machine pays for the build (about 5 minutes).
#
# Order of preference:
#   1. KUBEBUILDER_ASSETS, if it already holds kube-apiserver and etcd;
#   2. the cache at ${MCPAUTH_CACHE:-~/.cache/mcpauth}/envtest/$KUBE_VERSION;
#   3. a fresh build into that cache.
# etcd comes from Debian's etcd-server when it is not on PATH; kubectl from PATH, else
# it is built like kube-apiserver.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
here=$(cd "$(dirname "$0")/.." && pwd)
cache_root=${MCPAUTH_CACHE:-$HOME/.cache/mcpauth}
cache="$cache_root/envtest/$KUBE_VERSION"
link="$here/bin/k8s/$KUBE_VERSION"

log() { echo "envtest-assets: $*" >&2; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/kube-apiserver" && -x "$KUBEBUILDER_ASSETS/etcd" ]]; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

mkdir -p "$cache"
# Two make targets may ask at once; one builds, the other waits for it.
exec 9>"$cache/.lock"
flock 9

ensure_etcd() {
  if ! command -v etcd >/dev/null 2>&1; then
    log "etcd not found; installing Debian's etcd-server"
    if [[ $(id -u) -ne 0 ]]; then
      log "not root: install etcd (Debian: apt-get install etcd-server) and run again"
      exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >&2
  fi
  ln -sf "$(command -v etcd)" "$cache/etcd"
}

# go_build_k8s builds a command of k8s.io/kubernetes at KUBE_VERSION into the cache.
go_build_k8s() {
  local cmd=$1 out=$2 work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  log "building $cmd at $KUBE_VERSION from source (first run only; a few minutes)"
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local staging_version="v0.${KUBE_VERSION#v1.}"
  (
    cd "$work"
    go mod init mcpauth.dev/envtest-build >/dev/null 2>&1
    go mod edit -require "k8s.io/kubernetes@$KUBE_VERSION"
    # The staging modules are replaced by ./staging paths in kubernetes' own go.mod,
    # which a dependent module does not inherit: map each to its published version.
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}' | while read -r m; do
      case "$m" in
        k8s.io/sample-cli-plugin|k8s.io/sample-controller) continue ;; # not published
      esac
      go mod edit -replace "$m=$m@$staging_version"
    done
    printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/%s"\n' "$cmd" > tools.go
    GOFLAGS=-mod=mod go mod tidy >&2
    local ldflags="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
      ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
    done
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -ldflags "$ldflags" -o "$out.tmp" "k8s.io/kubernetes/cmd/$cmd" >&2
    mv "$out.tmp" "$out"
  )
}

# The dev cluster's build (hack/cluster/build.sh) makes the same binary the same way.
cluster_apiserver="$cache_root/cluster/$KUBE_VERSION/kube-apiserver"
if [[ ! -x "$cache/kube-apiserver" && -x "$cluster_apiserver" ]]; then
  cp "$cluster_apiserver" "$cache/kube-apiserver.tmp" && mv "$cache/kube-apiserver.tmp" "$cache/kube-apiserver"
fi
if [[ ! -x "$cache/kube-apiserver" ]]; then
  go_build_k8s kube-apiserver "$cache/kube-apiserver"
fi
ensure_etcd
if command -v kubectl >/dev/null 2>&1; then
  ln -sf "$(command -v kubectl)" "$cache/kubectl"
elif [[ ! -x "$cache/kubectl" ]]; then
  go_build_k8s kubectl "$cache/kubectl"
fi

mkdir -p "$(dirname "$link")"
ln -sfn "$cache" "$link"
log "kube-apiserver $("$cache/kube-apiserver" --version 2>/dev/null | awk '{print $2}'), etcd $("$cache/etcd" --version 2>/dev/null | awk '/etcd Version/{print $3}')"
echo "$link"
