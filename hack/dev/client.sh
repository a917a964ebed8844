#!/usr/bin/env bash
# Runs the end-to-end test's MCP client (test/e2e/node/client.mjs: the official
# TypeScript SDK with its OAuth support) against a running `make dev`, from a second
# terminal. It registers dynamically, logs in as the dev user (the browser's steps done
# in code), lists the tools, calls whoami, waits for its access token to expire (the
# dev OAuthProvider's tokens live a minute), and calls again through a refresh. Prints
# a JSON summary and exits 0 on success.
#   hack/dev/client.sh                     # about 75 s
#   EXPIRY_WAIT_MS=0 hack/dev/client.sh    # a few seconds, without the refresh
# The URLs come from bin/dev/env, which `make dev` writes when it is ready
# (MCPAUTH_DEV_DIR moves it, as it moves make dev's directory). test/e2e/README.md
# lists the client's other variables.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="${MCPAUTH_DEV_DIR:-$root/bin/dev}"
if [[ ! -f "$dir/env" ]]; then
  echo "client.sh: $dir/env is missing: start \`make dev\` and wait for \"ready\"" >&2
  exit 1
fi
# What the caller set wins over the file.
keep=()
for v in EXPIRY_WAIT_MS TIMEOUT_MS CLIENT_MODE CIMD_URL CLIENT_METADATA; do
  [[ -n "${!v:-}" ]] && keep+=("$v=${!v}")
done
set -a
# shellcheck disable=SC1091
source "$dir/env"
for kv in "${keep[@]}"; do export "${kv?}"; done
set +a
cd "$root/test/e2e/node"
exec node client.mjs "$@"
