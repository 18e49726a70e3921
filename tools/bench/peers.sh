#!/usr/bin/env bash
# The peers of the throughput benchmark, kept out of the project's own environment:
# dramatiq, taskiq (aio-pika broker, Redis results), Celery 5 and FastStream (and rstream, for
# bench/results_path.py) go into a virtualenv of their own, and Debian's redis-server (the
# results store of dramatiq and taskiq) is installed if missing. Only the benchmark's peer
# subprocesses run from that virtualenv.
#   peers.sh install        create or update the virtualenv, install redis-server
#   peers.sh --print-python the virtualenv's python (the benchmark finds the peers with it)
set -euo pipefail

PEERS_VENV=${ITL_BENCH_PEERS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/itl-workers/bench-peers-venv}
# The versions measured in docs/performance.md; a newer minor release is measured as it comes.
PEERS=(
  "dramatiq[rabbitmq,redis]>=2.2,<3"
  "taskiq>=0.13,<0.14"
  "taskiq-aio-pika>=0.6,<0.7"
  "taskiq-redis>=1.2,<2"
  "celery>=5.3,<6"
  "faststream[rabbit]>=0.7,<0.8"
  "rstream>=1.1,<2"
  "uvloop>=0.19"
)
STAMP=$PEERS_VENV/.peers-installed

install() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing Debian's redis-server (the benchmark starts its own instance)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq redis-server >/dev/null
  fi
  local wanted
  wanted=$(printf '%s\n' "${PEERS[@]}")
  if [[ -f $STAMP && $(cat "$STAMP") == "$wanted" ]]; then return 0; fi
  python3 -m venv "$PEERS_VENV"
  "$PEERS_VENV/bin/python" -m pip install -q --upgrade pip
  "$PEERS_VENV/bin/python" -m pip install -q "${PEERS[@]}"
  printf '%s\n' "$wanted" > "$STAMP"
  echo "benchmark peers installed in $PEERS_VENV" >&2
}

case "${1:-}" in
  install) install ;;
  --print-python) echo "$PEERS_VENV/bin/python" ;;
  *) echo "usage: $0 install|--print-python" >&2; exit 2 ;;
esac
