# Shared settings of the dev cluster scripts (sourced, not run).
#
# Everything the cluster makes on the machine is named here, so that down.sh can undo
# exactly that: two state directories, one bridge, one cgroup subtree per controller,
# the iptables chains and network namespaces that appear while it runs, and the
# sysctls it (or kubelet and kube-proxy) set, restored from what up.sh recorded.

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
CACHE_ROOT=${MCPAUTH_CACHE:-$HOME/.cache/mcpauth}
BIN="$CACHE_ROOT/cluster/$KUBE_VERSION"

STATE=${MCPAUTH_CLUSTER_STATE:-/var/lib/mcpauth-cluster}
RUN=${MCPAUTH_CLUSTER_RUN:-/run/mcpauth-cluster}
PKI="$STATE/pki"
LOGS="$STATE/logs"
LEDGER="$STATE/ledger" # what up.sh changed, one "kind value" a line
KUBECONFIG_ADMIN="$STATE/admin.kubeconfig"

# The node's bridge: pods hang off it, and the control plane listens on its address,
# which pods reach through the kubernetes Service (the apiserver will not advertise
# 127.0.0.1).
BRIDGE=${MCPAUTH_CLUSTER_BRIDGE:-mcpauth0}
BRIDGE_IP=10.88.0.1
POD_CIDR=10.88.0.0/16
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SVC_IP=10.96.0.1
NODE_NAME=mcpauth-node
CGROUP_ROOT=/mcpauth-cluster

APISERVER_PORT=6443
ETCD_CLIENT=127.0.0.1:23790
ETCD_PEER=127.0.0.1:23800
CONTAINERD_SOCK="$RUN/containerd/containerd.sock"

# Sysctls that kubelet (kernel defaults it wants), kube-proxy or up.sh may set.
SYSCTLS=(
  vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops
  kernel/keys/root_maxkeys kernel/keys/root_maxbytes
  net/ipv4/ip_forward net/ipv4/conf/all/forwarding net/ipv4/conf/all/route_localnet
  net/bridge/bridge-nf-call-iptables net/bridge/bridge-nf-call-ip6tables
  net/netfilter/nf_conntrack_max
)

COMPONENTS=(etcd containerd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

log() { printf 'cluster: %s\n' "$*" >&2; }
die() { printf 'cluster: error: %s\n' "$*" >&2; exit 1; }

record() { printf '%s\n' "$*" >>"$LEDGER"; }

pidfile() { echo "$RUN/$1.pid"; }

# pid_of NAME: the recorded process, if it is still the one we started (a pid file that
# outlived a reboot may name an unrelated process by now).
pid_of() {
  local f pid; f=$(pidfile "$1")
  [[ -f $f ]] || return 1
  pid=$(cat "$f")
  [[ -r /proc/$pid/cmdline ]] || return 1
  { tr "\0" " " <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q -- "$1" || return 1
  echo "$pid"
}

running() { pid_of "$1" >/dev/null; } # running NAME: its recorded process is alive

# proc_id PID: the pid with its start time, which names one process for good: pids are
# reused, the pair is not.
proc_id() { [[ -r /proc/$1/stat ]] && echo "$1 $(awk '{print $22}' "/proc/$1/stat")"; }

# OWNER: a process that started the cluster for itself (the cluster test) and whose
# death leaves it orphaned; up.sh records it as proc_id in $OWNER_FILE.
OWNER_FILE="$STATE/owner"

# cluster_state prints what is on the machine, one word:
#   none      no cluster state at all;
#   up        the cluster's components are running;
#   stale     state is left (mounts, bridge, rules) but none of its processes runs: a
#             reboot, or a run killed before down;
#   orphaned  running, but started by an owner process that is gone (a killed test).
cluster_state() {
  if [[ ! -f $LEDGER && ! -d $STATE && ! -d $RUN ]]; then echo none; return; fi
  local c any=0
  for c in "${COMPONENTS[@]}"; do running "$c" && any=1; done
  if [[ $any -eq 0 ]]; then echo stale; return; fi
  if [[ -s $OWNER_FILE ]]; then
    local pid start
    read -r pid start <"$OWNER_FILE"
    if [[ "$(proc_id "$pid")" != "$pid $start" ]]; then echo orphaned; return; fi
  fi
  echo up
}

kubectl_() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# iptables_chains prints "family table chain" for every chain of every table.
iptables_chains() {
  local fam cmd
  for fam in ipv4 ipv6; do
    cmd=iptables-save; [[ $fam == ipv6 ]] && cmd=ip6tables-save
    command -v $cmd >/dev/null 2>&1 || continue
    $cmd 2>/dev/null | awk -v f=$fam '/^\*/{t=substr($0,2)} /^:/{print f, t, substr($1,2)}'
  done
}

# cgroup_controllers prints the mounted cgroup v1 hierarchies (or the v2 root).
cgroup_controllers() {
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then echo /sys/fs/cgroup; return; fi
  find /sys/fs/cgroup -mindepth 1 -maxdepth 1 -type d | sort
}

netns_list() { ls -1 /run/netns 2>/dev/null | sort || true; }

# nft_tables prints "family name" for every nftables table (iptables-nft keeps its
# tables there, and creates them on first use).
nft_tables() {
  command -v nft >/dev/null 2>&1 || return 0
  nft list tables 2>/dev/null | awk '$1 == "table" {print $2, $3}' | sort
}
