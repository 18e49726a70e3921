#!/usr/bin/env bash
# A kind cluster of the kind tier: real kubelet, real pods, the project's own images.
#
#   cluster.sh up NAME [IMAGE...]   build what is missing (tools/kind/build.sh), create the cluster
#                                   NAME if it does not exist, load IMAGE... and the RabbitMQ image
#   cluster.sh down NAME            delete it, and kind's Docker network when no cluster is left;
#                                   then check that the host's kernel settings are as before `up`
#   cluster.sh check-host NAME      only that check
#
# kubectl's context is kind-NAME, written where kind writes it ($KUBECONFIG, else ~/.kube/config). Host sysctls that anything in a privileged node could write
# (see node-files/itl-node-entrypoint) are recorded at `up` and compared at `down`: a difference
# fails loudly, as it must never happen.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
STATE=${ITL_KIND_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/itl-workers/kind/state}
KIND=$(bash "$HERE/build.sh" --print-kind)
NODE_IMAGE=$(bash "$HERE/build.sh" --print-node-image)
RABBITMQ_IMAGE=$(bash "$HERE/build.sh" --print-rabbitmq-image)
# Global (not per network namespace) settings that a kubelet, systemd or dockerd would change.
GUARDED="net/ipv4/ip_forward net/ipv6/conf/all/forwarding vm/overcommit_memory vm/panic_on_oom
kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes kernel/pid_max
kernel/sysrq fs/protected_regular fs/protected_fifos fs/inotify/max_user_watches
fs/inotify/max_user_instances net/netfilter/nf_conntrack_max net/bridge/bridge-nf-call-iptables"

log() { printf '[kind/cluster.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'tools/kind/cluster.sh: %s\n' "$*" >&2; exit 1; }

host_settings() {
  local key
  for key in $GUARDED; do
    [ -r "/proc/sys/$key" ] && printf '%s=%s\n' "${key//\//.}" "$(tr '\t' ' ' <"/proc/sys/$key")"
  done
  return 0
}

check_host() {
  local before=$STATE/$1.host-settings
  [ -f "$before" ] || { log "no record of the host's settings for $1; nothing to compare"; return 0; }
  if ! diff <(cat "$before") <(host_settings) >&2; then
    die "the host's kernel settings changed while cluster $1 ran (lines above: < before, > now)"
  fi
  log "host kernel settings unchanged ($(wc -l <"$before") checked)"
}

exists() { "$KIND" get clusters 2>/dev/null | grep -qx "$1"; }

up() {
  local name=$1
  shift
  bash "$REPO/tools/docker/engine.sh" ensure
  bash "$HERE/build.sh" >/dev/null
  mkdir -p "$STATE"
  if exists "$name"; then
    log "reusing kind cluster $name"
  else
    host_settings >"$STATE/$name.host-settings"
    log "creating kind cluster $name from $NODE_IMAGE"
    # A second try when the first fails: on a loaded machine kubeadm's `systemctl` calls inside
    # the node have failed once ("failed to reload systemd"), so the kubelet never started.
    # kind deletes a node that failed to come up.
    local attempt
    for attempt in 1 2; do
      "$KIND" create cluster --name "$name" --image "$NODE_IMAGE" --config "$HERE/cluster.yaml" \
        --wait 180s >&2 && break
      [ "$attempt" = 1 ] || die "kind create cluster failed twice (output above)"
      log "kind create cluster failed; deleting what is left of $name and trying once more"
      "$KIND" delete cluster --name "$name" >&2 || true
    done
  fi
  log "loading ${*:-no project images} and $RABBITMQ_IMAGE"
  "$KIND" load docker-image --name "$name" "$RABBITMQ_IMAGE" "$@" >&2
}

down() {
  if exists "$1"; then
    log "deleting kind cluster $1"
    "$KIND" delete cluster --name "$1" >&2
  fi
  if [ -z "$("$KIND" get clusters 2>/dev/null)" ] && docker network inspect kind >/dev/null 2>&1; then
    docker network rm kind >/dev/null && log "removed Docker network kind"
  fi
  check_host "$1"
  rm -f "$STATE/$1.host-settings"
}

case ${1:-} in
  up) [ $# -ge 2 ] || die "usage: cluster.sh up NAME [IMAGE...]"; shift; up "$@" ;;
  down) [ $# -eq 2 ] || die "usage: cluster.sh down NAME"; down "$2" ;;
  check-host) [ $# -eq 2 ] || die "usage: cluster.sh check-host NAME"; check_host "$2" ;;
  *) echo "usage: cluster.sh up NAME [IMAGE...] | down NAME | check-host NAME" >&2; exit 2 ;;
esac
