#!/usr/bin/env bash
# Says whether this machine can run the dev cluster: exits 0 silently when it can,
# otherwise prints the first reason it cannot (one line) and exits 1. Used by
# cluster-up, `make dev` (cluster mode or envtest mode) and the cluster test's gate.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

no() { echo "$*"; exit 1; }

[[ $(uname -s) == Linux ]] || no "not Linux"
[[ $(id -u) -eq 0 ]] || no "not root (the cluster needs root for containerd, mounts, the bridge and iptables)"
[[ -d /sys/fs/cgroup/memory || -f /sys/fs/cgroup/cgroup.controllers ]] || no "no cgroup file system at /sys/fs/cgroup"
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || no "the kernel has no overlay file system (containerd's snapshotter)"
for c in containerd containerd-shim-runc-v2 runc ctr iptables iptables-save ip6tables conntrack nft ip etcd openssl curl go; do
  command -v "$c" >/dev/null 2>&1 || no "$c is not installed (make install-deps installs the cluster's Debian packages: containerd runc containernetworking-plugins iptables conntrack nftables)"
done
for p in bridge host-local loopback; do
  [[ -x /usr/lib/cni/$p ]] || no "the CNI plugin /usr/lib/cni/$p is missing (Debian: containernetworking-plugins)"
done
if [[ ! -f $LEDGER ]]; then
  ip link show "$BRIDGE" >/dev/null 2>&1 && no "a network interface named $BRIDGE exists and is not this cluster's (set MCPAUTH_CLUSTER_BRIDGE)"
  for port in "$APISERVER_PORT" "${ETCD_CLIENT##*:}" "${ETCD_PEER##*:}" 10248 10249 10250 10256 10257 10259; do
    if ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
      no "TCP port $port, which the cluster needs, is taken (ss -ltnp 'sport = :$port')"
    fi
  done
fi
exit 0
