#!/usr/bin/env bash
# Makes sure Node.js 20.19 or later with npm is here (the end-to-end tests run the
# official TypeScript MCP SDK and oidc-provider), installing Debian's nodejs (and npm,
# which stock Debian packages apart) when node is missing. Stock Debian 12's nodejs is
# 18: then it says what to install instead.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v node >/dev/null; then
  "$here/install-deps.sh" nodejs
fi
if ! command -v npm >/dev/null; then
  "$here/install-deps.sh" npm
fi
v=$(node --version 2>/dev/null || echo v0)
IFS=. read -r major minor _ <<<"${v#v}"
if ((major < 20 || (major == 20 && minor < 19))); then
  echo "install-node: node $v is too old: install Node.js 20.19 or later (for example from the NodeSource packages), then run make again" >&2
  exit 1
fi
