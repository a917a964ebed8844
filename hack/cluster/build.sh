#!/usr/bin/env bash
# Builds the Kubernetes node and control-plane binaries for the dev cluster and prints
# the directory that holds them as its last line.
#
# Like hack/envtest-assets.sh, and for the same reason (no prebuilt downloads reach this
# machine), every command is built from k8s.io/kubernetes at KUBE_VERSION through the Go
# module proxy in a throwaway module that maps the staging modules to their published
# v0.x.y. All commands go through one `go build`, so the packages they share compile once.
# The result is cached outside the clone, keyed by version: only the first run on a
# machine pays (about 13 minutes on 2 cores); the envtest kube-apiserver is reused when
# it is already built.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
cache_root=${MCPAUTH_CACHE:-$HOME/.cache/mcpauth}
cache="$cache_root/cluster/$KUBE_VERSION"
envtest="$cache_root/envtest/$KUBE_VERSION"
cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

log() { echo "cluster-build: $*" >&2; }

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

# Reuse the envtest build of kube-apiserver: same source, same flags.
if [[ ! -x "$cache/kube-apiserver" && -x "$envtest/kube-apiserver" ]]; then
  cp "$envtest/kube-apiserver" "$cache/kube-apiserver.tmp" && mv "$cache/kube-apiserver.tmp" "$cache/kube-apiserver"
fi

missing=()
for c in "${cmds[@]}"; do [[ -x "$cache/$c" ]] || missing+=("$c"); done

if [[ ${#missing[@]} -gt 0 ]]; then
  log "building ${missing[*]} at $KUBE_VERSION from source (first run only; about 13 minutes on 2 cores)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  staging_version="v0.${KUBE_VERSION#v1.}"
  cd "$work"
  go mod init mcpauth.dev/cluster-build >/dev/null 2>&1
  go mod edit -require "k8s.io/kubernetes@$KUBE_VERSION"
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}' | while read -r m; do
    case "$m" in
      k8s.io/sample-cli-plugin|k8s.io/sample-controller) continue ;; # not published
    esac
    go mod edit -replace "$m=$m@$staging_version"
  done
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for c in "${missing[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
    printf ')\n'
  } > tools.go
  GOFLAGS=-mod=mod go mod tidy >&2
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir out
  pkgs=()
  for c in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -ldflags "$ldflags" -o out/ "${pkgs[@]}" >&2
  for c in "${missing[@]}"; do mv "out/$c" "$cache/$c"; done
  cd - >/dev/null
fi

for c in "${cmds[@]}"; do
  "$cache/$c" --version >/dev/null 2>&1 || [[ $c == kubectl ]] || { log "$c does not run"; exit 1; }
done
log "kubernetes $KUBE_VERSION binaries in $cache"
echo "$cache"
