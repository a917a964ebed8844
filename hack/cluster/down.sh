#!/usr/bin/env bash
# `make cluster-down`: stops exactly what up.sh started and undoes every change it made
# to the machine, from its ledger: pods (their network namespaces, through the kubelet
# and the CNI plugin), the components, containerd's shims and containers, the mounts
# under the state directories, the bridge, the iptables rules and chains that were not
# there before, the cgroups, the sysctls, and the state under /var and /run.
# Safe to run twice, and after a failed or half-finished up.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

if [[ ! -f $LEDGER && ! -d $STATE && ! -d $RUN ]]; then
  log "no cluster here: nothing to do"
  exit 0
fi
[[ $(id -u) -eq 0 ]] || die "not root"
touch "$LEDGER" 2>/dev/null || true

ledger() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$LEDGER" 2>/dev/null; }

# stop NAME...: SIGTERM to each, then SIGKILL to what is left after 10 s. Together,
# because each takes a second or two to exit.
stop() {
  local name pid pids=() i
  for name in "$@"; do
    if pid=$(pid_of "$name"); then
      log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null
      pids+=("$pid")
    fi
  done
  for i in $(seq 1 100); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive -eq 0 ]] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  for name in "$@"; do rm -f "$(pidfile "$name")"; done
}

# 1. Pods first, while the kubelet runs: it stops their sandboxes, and the CNI plugin
#    removes their interfaces and network namespaces.
stop kube-controller-manager kube-scheduler
if pid_of kube-apiserver >/dev/null && pid_of kubelet >/dev/null && pid_of containerd >/dev/null; then
  log "deleting every pod (the kubelet stops their sandboxes)"
  kubectl_ delete pods --all --all-namespaces --grace-period=1 --wait=false >/dev/null 2>&1 || true
  for i in $(seq 1 60); do
    left=$(ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks ls 2>/dev/null | awk '$3 == "RUNNING"' | wc -l)
    [[ $left -eq 0 ]] && break
    sleep 0.5
  done
fi
stop kube-proxy kubelet
stop kube-apiserver

# 2. Whatever containers are left (a kubelet that was already gone), then containerd.
if pid_of containerd >/dev/null; then
  for t in $(ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
    ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
  done
  sleep 0.5
  for t in $(ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
    ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks delete -f "$t" >/dev/null 2>&1 || true
  done
fi
stop containerd etcd

# Processes still in the cluster's cgroups (containers), and containerd's shims, which
# name this cluster's socket on their command line: these are ours and nobody else's.
ours() {
  local h
  for h in $(ledger cgroup); do
    [[ -d $h ]] && find "$h" -name cgroup.procs -exec cat {} + 2>/dev/null
  done
  local p
  for p in /proc/[0-9]*; do
    { tr "\0" " " <"$p/cmdline"; } 2>/dev/null | grep -qF -- "-address $CONTAINERD_SOCK" && echo "${p#/proc/}"
  done
}
for i in 1 2 3 4 5; do
  pids=$(ours | sort -u | grep -v "^$$\$" || true)
  [[ -z $pids ]] && break
  log "killing leftover processes: $(echo $pids)"
  kill -KILL $pids 2>/dev/null || true
  sleep 0.5
done

# 3. Mounts under the state directories, and network namespaces that were not there
#    before, deepest first.
netns_before=$(cat "$STATE/netns.before" 2>/dev/null || true)
mounts() {
  findmnt -rn -o TARGET | sed 's/\\x20/ /g' | while read -r m; do
    case $m in
      "$STATE"/*|"$STATE"|"$RUN"/*|"$RUN") echo "$m" ;;
      /run/netns/*|/var/run/netns/*) grep -qxF "${m##*/}" <<<"$netns_before" || echo "$m" ;;
    esac
  done | sort -r
}
for i in 1 2 3; do
  ms=$(mounts)
  [[ -z $ms ]] && break
  while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done <<<"$ms"
done
for n in $(netns_list); do
  grep -qxF "$n" <<<"$netns_before" || rm -f "/run/netns/$n"
done

# 4. Network: interfaces on the bridge, the bridge, iptables.
if ip link show "$BRIDGE" >/dev/null 2>&1 && ledger link | grep -qxF "$BRIDGE"; then
  for l in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link delete "$l" 2>/dev/null || true
  done
  ip link delete "$BRIDGE" && log "removed the bridge $BRIDGE"
fi

# undo_iptables SAVE CMD BEFORE: deletes the rules added to chains that existed before,
# then flushes and deletes the chains that did not.
undo_iptables() {
  local save=$1 cmd=$2 before=$3
  command -v "$save" >/dev/null 2>&1 || return 0
  [[ -f $before ]] || return 0
  local now table chain rule n=0
  now=$($save 2>/dev/null) || return 0
  for table in $(awk '/^\*/{print substr($0,2)}' <<<"$now"); do
    local cur old newchains
    cur=$(awk -v t="$table" '/^\*/{in_t = (substr($0,2) == t)} in_t' <<<"$now")
    old=$(awk -v t="$table" '/^\*/{in_t = (substr($0,2) == t)} in_t' "$before")
    newchains=$(comm -13 <(awk '/^:/{print substr($1,2)}' <<<"$old" | sort) <(awk '/^:/{print substr($1,2)}' <<<"$cur" | sort))
    while IFS= read -r rule; do
      [[ -z $rule ]] && continue
      chain=$(awk '{print $2}' <<<"$rule")
      grep -qxF "$chain" <<<"$newchains" && continue
      eval "$cmd -w -t $table ${rule/#-A /-D }" 2>/dev/null && n=$((n + 1))
    done < <(comm -13 <(grep '^-A ' <<<"$old" | sort) <(grep '^-A ' <<<"$cur" | sort))
    for chain in $newchains; do $cmd -w -t "$table" -F "$chain" 2>/dev/null; done
    for chain in $newchains; do $cmd -w -t "$table" -X "$chain" 2>/dev/null && n=$((n + 1)); done
  done
  [[ $n -gt 0 ]] && log "$cmd: removed $n rules and chains the cluster added"
  return 0
}
undo_iptables iptables-save iptables "$STATE/iptables.before"
undo_iptables ip6tables-save ip6tables "$STATE/ip6tables.before"
# With the nf_tables backend, the first iptables call creates its tables: remove those
# that were not there before, now that they hold no rule of ours.
if [[ -f $STATE/nft.before ]]; then
  while read -r fam name; do
    [[ -z $fam ]] && continue
    save=iptables-save; [[ $fam == ip6 ]] && save=ip6tables-save
    if [[ $name == kube-proxy ]] || ! $save -t "$name" 2>/dev/null | grep -q '^-A '; then
      nft delete table "$fam" "$name" 2>/dev/null && log "removed the nftables table $fam $name"
    else
      log "kept the nftables table $fam $name: it holds rules the cluster did not add"
    fi
  done < <(comm -13 "$STATE/nft.before" <(nft_tables))
fi

# 5. cgroups, deepest first (the kubelet's kubepods tree is inside ours).
for h in $(ledger cgroup); do
  [[ -d $h ]] || continue
  for i in 1 2 3 4 5; do
    find "$h" -depth -type d -exec rmdir {} + 2>/dev/null
    [[ -d $h ]] || break
    sleep 0.5
  done
  [[ -d $h ]] && log "could not remove the cgroup $h"
done

# 6. sysctls back to what they were.
while read -r key value; do
  [[ -z $key ]] && continue
  if [[ -e /proc/sys/$key && $(cat "/proc/sys/$key") != "$value" ]]; then
    echo "$value" >"/proc/sys/$key" && log "sysctl $key back to $value"
  fi
done < <(ledger sysctl)

# 7. Files: what did not exist before, then the state directories themselves, unless
#    something is still mounted under them.
for p in $(ledger absent); do
  [[ -e $p ]] && rm -rf "$p"
done
if [[ -n $(mounts) ]]; then
  die "still mounted, so $STATE and $RUN are kept: $(mounts | tr '\n' ' ')"
fi
rm -rf "$RUN" "$STATE"
log "the cluster is down; the machine is as it was before cluster-up"
