#!/usr/bin/env bash
# `make dev`: the whole system on this machine, until Ctrl-C. Installs what is missing
# (Debian packages and npm packages, as `make install-deps`), then runs hack/dev in one
# of two modes, and says which and why:
#   cluster  a real single-node Kubernetes cluster (hack/cluster: etcd, the Kubernetes
#            components built from source and cached, containerd): the operator deployed
#            with `make deploy`, the authorization server and the example MCP server as
#            pods. Where the machine allows it (root, cgroups, the packages; see
#            hack/cluster/check.sh).
#   envtest  kube-apiserver and etcd only: the operator and the server run in process.
# MCPAUTH_DEV_MODE=cluster|envtest forces one. Arguments go to hack/dev
# (`hack/dev.sh -h` lists them); so do the MCPAUTH_DEV_* environment variables, the way
# to pass them through make:
#   MCPAUTH_DEV_AUTHSERVER_PORT=9001 make dev
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '%s\n' "$*" >&2; }

step "make dev: installing what is missing (make install-deps: Debian and npm packages) ..."
make --no-print-directory install-deps >&2

mode=${MCPAUTH_DEV_MODE:-auto}
if [[ $mode == auto ]]; then
  if why=$(hack/cluster/check.sh); then
    mode=cluster
    step "make dev: cluster mode: this machine can run a Kubernetes node (root, cgroups, containerd, runc, CNI, iptables)"
  else
    mode=envtest
    step "make dev: envtest mode, because the cluster cannot run here: $why"
  fi
elif [[ $mode == cluster ]]; then
  why=$(hack/cluster/check.sh) || { step "make dev: MCPAUTH_DEV_MODE=cluster, but: $why"; exit 1; }
  step "make dev: cluster mode (MCPAUTH_DEV_MODE=cluster)"
else
  step "make dev: $mode mode (MCPAUTH_DEV_MODE=$mode)"
fi

if [[ $mode == cluster ]]; then
  step "make dev: the Kubernetes components (the first run builds them, about 13 minutes) ..."
  hack/cluster/build.sh >/dev/null
else
  step "make dev: envtest assets (the first run builds kube-apiserver, about 5 minutes) ..."
  KUBEBUILDER_ASSETS="$(hack/envtest-assets.sh | tail -n 1)"
  export KUBEBUILDER_ASSETS
fi

step "make dev: building hack/dev ..."
go build -o bin/mcpauth-dev ./hack/dev
# exec: Ctrl-C and SIGTERM reach the program itself, which stops what it started.
exec bin/mcpauth-dev --mode "$mode" "$@"
