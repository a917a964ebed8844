#!/usr/bin/env bash
# `make cluster-up`: a single-node Kubernetes cluster on this machine without Docker:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy
# (built from source by build.sh and cached), containerd with runc and the CNI bridge
# plugin from Debian, and a pause image built in Go (hack/images).
#
# Everything listens on loopback or on the node bridge's address ($BRIDGE_IP), never on
# all interfaces. Every change to the machine is written to the ledger
# ($STATE/ledger) before it is made, so down.sh undoes exactly those.
# Idempotent: when the cluster is up it says so and prints the kubectl line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/lib.sh"

step_n=0
step() { step_n=$((step_n + 1)); printf '[%d/12] %s\n' "$step_n" "$*" >&2; }

# ---------------------------------------------------------------------------------------
# Can this machine run it? check.sh says why not, in one line.
reason=$("$here/check.sh" 2>&1) || die "$reason"

case $(cluster_state) in
  none) ;;
  stale | orphaned)
    # Nobody uses it: its processes are gone (a reboot, a killed run), or the test that
    # started it for itself is. Undo it from its ledger rather than refuse.
    log "a cluster was left behind ($(cluster_state)): undoing it first with down.sh"
    "$here/down.sh" || die "down.sh could not undo the cluster left behind; see above"
    ;;
  up)
    if running kube-apiserver && running kubelet && kubectl_ get --raw /readyz >/dev/null 2>&1; then
      log "already up"
      echo "$BIN/kubectl --kubeconfig $KUBECONFIG_ADMIN get nodes"
      exit 0
    fi
    die "a cluster's state is in $STATE but it is not (fully) running: run \`make cluster-down\` first"
    ;;
esac

step "building or reusing the Kubernetes $KUBE_VERSION binaries (cached in $BIN)"
"$here/build.sh" >/dev/null

step "recording the machine's state (sysctls, iptables, network namespaces) in $LEDGER"
mkdir -p "$STATE" "$RUN"
: >"$LEDGER"
record dir "$STATE"
record dir "$RUN"
if [[ -n ${MCPAUTH_CLUSTER_OWNER:-} ]]; then
  proc_id "$MCPAUTH_CLUSTER_OWNER" >"$OWNER_FILE" || die "MCPAUTH_CLUSTER_OWNER=$MCPAUTH_CLUSTER_OWNER is not a running process"
fi
mkdir -p "$PKI" "$LOGS" "$RUN/containerd"
for s in "${SYSCTLS[@]}"; do
  [[ -e /proc/sys/$s ]] && record sysctl "$s" "$(cat "/proc/sys/$s")"
done
for p in /var/lib/cni /run/netns /var/log/containers /var/log/pods /etc/cni /opt/cni /var/lib/kubelet /var/lib/containerd /run/containerd; do
  [[ -e $p ]] || record absent "$p"
done
iptables-save >"$STATE/iptables.before" 2>/dev/null || : >"$STATE/iptables.before"
ip6tables-save >"$STATE/ip6tables.before" 2>/dev/null || : >"$STATE/ip6tables.before"
netns_list >"$STATE/netns.before"
nft_tables >"$STATE/nft.before"

step "network: bridge $BRIDGE $BRIDGE_IP (and the Service range $SERVICE_CIDR on it), IP forwarding on"
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
  record link "$BRIDGE"
  ip link add "$BRIDGE" type bridge
fi
ip addr replace "$BRIDGE_IP/16" dev "$BRIDGE"
ip link set "$BRIDGE" up
# Service addresses are virtual: kube-proxy rewrites them. Until it has (a Service just
# made), a packet to one must go nowhere rather than out of the machine's uplink; the
# route goes with the bridge.
ip route replace "$SERVICE_CIDR" dev "$BRIDGE"
# Service traffic to a pod on the same bridge is routed back out of it after DNAT.
echo 1 >/proc/sys/net/ipv4/ip_forward
[[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] || modprobe br_netfilter 2>/dev/null || true
[[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] && echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables

step "cgroups: $CGROUP_ROOT in every hierarchy (pods live under it)"
for h in $(cgroup_controllers); do
  [[ -d $h$CGROUP_ROOT ]] && continue
  record cgroup "$h$CGROUP_ROOT"
  mkdir "$h$CGROUP_ROOT"
  if [[ -f $h/cpuset.cpus ]]; then
    cat "$h/cpuset.cpus" >"$h$CGROUP_ROOT/cpuset.cpus"
    cat "$h/cpuset.mems" >"$h$CGROUP_ROOT/cpuset.mems"
  fi
done

step "PKI and kubeconfigs in $PKI"
"$here/pki.sh"

# start NAME ARGS...: runs a component in its own session, logging to $LOGS/NAME.log.
start() {
  local name=$1; shift
  record process "$name"
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$name")"
}

# wait_for WHAT SECONDS CMD...: retries CMD until it succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      die "$what: not ready after ${secs}s; see $LOGS/"
    fi
    for c in "${COMPONENTS[@]}"; do
      if [[ -f $(pidfile "$c") ]] && ! running "$c"; then
        tail -n 15 "$LOGS/$c.log" >&2 || true
        die "$c exited; its log is $LOGS/$c.log (run \`make cluster-down\` to clean up)"
      fi
    done
    sleep 0.5
  done
}

step "etcd on $ETCD_CLIENT"
start etcd etcd --name mcpauth --data-dir "$STATE/etcd" \
  --listen-client-urls "http://$ETCD_CLIENT" --advertise-client-urls "http://$ETCD_CLIENT" \
  --listen-peer-urls "http://$ETCD_PEER" --initial-advertise-peer-urls "http://$ETCD_PEER" \
  --initial-cluster "mcpauth=http://$ETCD_PEER" --listen-metrics-urls "" \
  --quota-backend-bytes 1073741824 --log-level warn
wait_for etcd 30 curl -fsS "http://$ETCD_CLIENT/health"

step "containerd (socket $CONTAINERD_SOCK) and the pause image"
"$here/render.sh" containerd >"$STATE/containerd.toml"
mkdir -p "$STATE/cni"
"$here/render.sh" cni >"$STATE/cni/10-mcpauth.conflist"
start containerd containerd --config "$STATE/containerd.toml"
wait_for containerd 30 ctr --address "$CONTAINERD_SOCK" version
"$here/images.sh" pause >&2

step "kube-apiserver on https://$BRIDGE_IP:$APISERVER_PORT"
start kube-apiserver "$BIN/kube-apiserver" \
  --bind-address "$BRIDGE_IP" --advertise-address "$BRIDGE_IP" --secure-port "$APISERVER_PORT" \
  --etcd-servers "http://$ETCD_CLIENT" \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --client-ca-file "$PKI/ca.crt" \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types InternalIP \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --authorization-mode Node,RBAC --allow-privileged=true \
  --enable-admission-plugins NodeRestriction \
  --profiling=false
wait_for kube-apiserver 90 kubectl_ get --raw /readyz

step "kube-controller-manager and kube-scheduler on 127.0.0.1"
start kube-controller-manager "$BIN/kube-controller-manager" \
  --bind-address 127.0.0.1 --kubeconfig "$STATE/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --use-service-account-credentials --service-cluster-ip-range "$SERVICE_CIDR" \
  --leader-elect=false --profiling=false
start kube-scheduler "$BIN/kube-scheduler" \
  --bind-address 127.0.0.1 --kubeconfig "$STATE/scheduler.kubeconfig" \
  --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
  --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
  --leader-elect=false --profiling=false

step "kubelet (node $NODE_NAME at $BRIDGE_IP) and kube-proxy"
"$here/render.sh" kubelet >"$STATE/kubelet.yaml"
"$here/render.sh" kube-proxy >"$STATE/kube-proxy.yaml"
start kubelet "$BIN/kubelet" --config "$STATE/kubelet.yaml" \
  --kubeconfig "$STATE/kubelet.kubeconfig" --root-dir "$STATE/kubelet" \
  --hostname-override "$NODE_NAME" --node-ip "$BRIDGE_IP"
start kube-proxy "$BIN/kube-proxy" --config "$STATE/kube-proxy.yaml"

step "waiting for the node to be Ready and the default ServiceAccount"
wait_for "node $NODE_NAME Ready" 120 kubectl_ wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
wait_for "the default ServiceAccount" 60 kubectl_ -n default get serviceaccount default

step "ready"
log "the cluster is up (logs in $LOGS; \`make cluster-down\` removes it)"
echo "$BIN/kubectl --kubeconfig $KUBECONFIG_ADMIN get nodes"
