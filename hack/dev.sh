#!/usr/bin/env bash
# `make dev`: the whole system on this machine, until Ctrl-C. Installs what is missing
# (Debian packages and npm packages, as `make install-deps`), provides the envtest
# assets (kube-apiserver is built from source once and cached), builds hack/dev and
# runs it. Arguments go to it (`hack/dev.sh -h` lists them); so do the MCPAUTH_DEV_*
# environment variables, the way to pass them through make:
#   MCPAUTH_DEV_AUTHSERVER_PORT=9001 make dev
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '%s\n' "$*" >&2; }

step "make dev: installing what is missing (make install-deps: Debian and npm packages) ..."
make --no-print-directory install-deps >&2

step "make dev: envtest assets (the first run builds kube-apiserver, about 5 minutes) ..."
KUBEBUILDER_ASSETS="$(hack/envtest-assets.sh | tail -n 1)"
export KUBEBUILDER_ASSETS

step "make dev: building hack/dev ..."
go build -o bin/mcpauth-dev ./hack/dev
# exec: Ctrl-C and SIGTERM reach the program itself, which stops what it started.
exec bin/mcpauth-dev "$@"
