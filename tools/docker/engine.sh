#!/usr/bin/env bash
# A reachable Docker engine for the image builds and the kind tier, started here when needed.
#
#   engine.sh ensure    docker info works, or start dockerd (root + docker.io installed), or explain
#   engine.sh install   apt-get install what the images and the kind tier need (root): docker.io
#                       (the engine they are tested with), debootstrap (offline base image), gcc
#                       and libc6-dev (the static pause binary); a no-op when all are there
#   engine.sh stop      stop a dockerd that `ensure` started (never one it did not start)
#
# Machines without systemd (CI here) have no service manager to start dockerd, so `ensure` starts
# it in the background, logging to $STATE/dockerd.log. Two choices keep it from touching the
# host beyond its own bridges and rules:
#   --ip-forward=false  dockerd would otherwise set net.ipv4.ip_forward=1 on the host; the builds
#                       use `--network host` instead, and kind's node is reached through the
#                       published port on 127.0.0.1 (docker-proxy), which needs no forwarding;
#   runc-bounded        as the default runtime: Docker 20.10 asks for every capability on
#                       --privileged, which fails where the host's bounding set lacks one (see
#                       that file); newer Docker does the same filtering itself.
# Environment: ITL_DOCKER_STATE (default ~/.cache/itl-workers/docker), DOCKER_HOST (respected:
# an engine elsewhere is used as it is and never started here).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${ITL_DOCKER_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/itl-workers/docker}
PIDFILE=$STATE/dockerd.pid
LOG=$STATE/dockerd.log

say() { printf '[engine.sh] %s\n' "$*" >&2; }
die() { printf 'engine.sh: %s\n' "$*" >&2; exit 1; }

reachable() { docker info >/dev/null 2>&1; }

ensure() {
  command -v docker >/dev/null 2>&1 || die "no docker CLI on PATH (apt-get install docker.io, or make install-docker)"
  if reachable; then return 0; fi
  [ -z "${DOCKER_HOST:-}" ] || die "DOCKER_HOST=$DOCKER_HOST is set but not reachable (docker info failed)"
  [ "$(id -u)" = 0 ] || die "no Docker engine is reachable and only root may start one: start dockerd, or add yourself to the docker group"
  command -v dockerd >/dev/null 2>&1 || die "no Docker engine is reachable and dockerd is not installed (make install-docker, or apt-get install docker.io)"
  [ -x /usr/bin/python3 ] || die "/usr/bin/python3 is needed by $HERE/runc-bounded"
  mkdir -p "$STATE"
  local forward_before
  forward_before=$(cat /proc/sys/net/ipv4/ip_forward)
  # A copy: the daemon outlives this checkout (a worktree or CI clone may be deleted).
  install -m 0755 "$HERE/runc-bounded" "$STATE/runc-bounded"
  say "starting dockerd (log: $LOG)"
  (
    # Only stdio is handed on: dockerd, containerd and every container shim would otherwise
    # inherit the caller's descriptors for good, e.g. tools/kind/build.sh's build lock (fd 9),
    # which then stays held and blocks the next build forever.
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
    done
    exec setsid dockerd --ip-forward=false \
      --add-runtime "itl-runc=$STATE/runc-bounded" --default-runtime itl-runc \
      --pidfile "$PIDFILE" >>"$LOG" 2>&1 </dev/null
  ) &
  local _
  for _ in $(seq 1 120); do
    reachable && break
    kill -0 $! 2>/dev/null || die "dockerd exited at start; last lines of $LOG:
$(tail -n 15 "$LOG")"
    sleep 0.5
  done
  reachable || die "dockerd did not answer within 60 s; see $LOG"
  [ "$(cat /proc/sys/net/ipv4/ip_forward)" = "$forward_before" ] \
    || die "net.ipv4.ip_forward changed while dockerd started: this must never happen"
  say "dockerd $(docker version --format '{{.Server.Version}}') running (pid $(cat "$PIDFILE"))"
}

install_packages() {
  local missing=() package
  for package in docker.io debootstrap gcc libc6-dev; do
    dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  [ "$(id -u)" = 0 ] || die "installing ${missing[*]} needs root (apt-get install ${missing[*]})"
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
}

stop() {
  [ -f "$PIDFILE" ] || { say "no dockerd started by engine.sh"; return 0; }
  local pid _
  pid=$(cat "$PIDFILE")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "$PIDFILE"
}

case ${1:-} in
  ensure) ensure ;;
  install) install_packages ;;
  stop) stop ;;
  *) echo "usage: engine.sh ensure|install|stop" >&2; exit 2 ;;
esac
