#!/usr/bin/env bash
# Builds the named images (default: all) with hack/images into bin/images and imports
# them into the dev cluster's containerd (namespace k8s.io, where the kubelet looks).
# Pods use them with imagePullPolicy IfNotPresent or Never: there is no registry.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
cd "$repo"
mkdir -p bin
go build -o bin/mcpauth-images ./hack/images
mkdir -p "$STATE/images"
bin/mcpauth-images -out bin/images "$@" | while read -r name path digest; do
  stamp="$STATE/images/${name//[:\/]/_}"
  if [[ -f $stamp && $(cat "$stamp") == "$digest" ]]; then
    log "image $name is loaded ($digest)"
  else
    ctr --address "$CONTAINERD_SOCK" -n k8s.io images import "$path" >/dev/null
    echo "$digest" >"$stamp"
    log "image $name imported ($digest)"
  fi
done
