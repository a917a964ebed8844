#!/usr/bin/env bash
# Prints what cluster is on this machine, one word (none, up, stale, orphaned; see
# cluster_state in lib.sh), for callers that are not shell: the cluster test.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cluster_state
