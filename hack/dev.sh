#!/usr/bin/env bash
# `make dev`: the whole system on one machine. Not built yet: the end-to-end issue
# fills this in (local control plane from the envtest assets, the operator, a dev
# upstream OpenID provider, the authorization server and an example MCP server).
set -euo pipefail
cat >&2 <<'MSG'
make dev: not yet.
The local, all-in-one system is not built yet. What works today:
  make test                      every test (envtest, real Redis, headless Chromium)
  go run ./cmd/authserver --help the authorization server, standalone
MSG
exit 1
