#!/usr/bin/env bash
# Prints one configuration file of the dev cluster: render.sh containerd|cni|kubelet|kube-proxy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

case ${1:-} in
containerd)
  # Own root, state, sockets and runc root, so nothing is shared with a containerd the
  # machine may run; no TCP listener but the CRI streaming server on loopback.
  # restrict_oom_score_adj: the machine lacks CAP_SYS_RESOURCE.
  cat <<TOML
version = 2
root = "$STATE/containerd"
state = "$RUN/containerd/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$RUN/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "mcpauth-pause:dev"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$RUN/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni"
    max_conf_num = 1
TOML
  ;;
cni)
  # The bridge exists already (up.sh made it, with the control plane on its address).
  # No masquerade: pods talk only to each other and to this machine.
  cat <<JSON
{
  "cniVersion": "1.0.0",
  "name": "mcpauth",
  "plugins": [{
    "type": "bridge",
    "bridge": "$BRIDGE",
    "isGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {
      "type": "host-local",
      "dataDir": "$STATE/cni-ipam",
      "ranges": [[{"subnet": "$POD_CIDR", "rangeStart": "10.88.1.1", "gateway": "$BRIDGE_IP"}]],
      "routes": [{"dst": "0.0.0.0/0"}]
    }
  }]
}
JSON
  ;;
kubelet)
  # cgroup v1 and no swap accounting here: failCgroupV1 false, cgroupfs, failSwapOn false.
  cat <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $BRIDGE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
failCgroupV1: false
failSwapOn: false
podLogsDir: $STATE/pod-logs
resolvConf: /etc/resolv.conf
clusterDomain: cluster.local
serializeImagePulls: false
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
YAML
  ;;
kube-proxy)
  # Node ports only on the bridge; no localhost node ports (they need route_localnet);
  # conntrack settings left as the machine has them.
  cat <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
nodePortAddresses: ["$BRIDGE_IP/32"]
clientConnection:
  kubeconfig: $STATE/kube-proxy.kubeconfig
iptables:
  localhostNodePorts: false
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
YAML
  ;;
*)
  echo "usage: render.sh containerd|cni|kubelet|kube-proxy" >&2
  exit 2
  ;;
esac
