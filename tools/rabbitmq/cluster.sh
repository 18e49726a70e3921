#!/usr/bin/env bash
# A local 3-node RabbitMQ cluster for tests, benchmarks and the demo: Debian's rabbitmq-server,
# three nodes on 127.0.0.1 with their own AMQP and distribution ports, nodenames and data
# under ${ITL_RABBITMQ_CLUSTER_HOME}. It never touches the single broker of rabbitmq.sh
# (port 5672) or a system broker.
#   cluster.sh up            start the nodes that are down, cluster them, wait (idempotent)
#   cluster.sh down          stop every node and delete the cluster's data (it is disposable)
#   cluster.sh status        print each node's state; exit 0 if all three run clustered
#   cluster.sh urls          the comma-separated AMQP URLs of the three nodes
#   cluster.sh kill N        SIGKILL node N (1-3): a crash, no clean shutdown
#   cluster.sh stop N        stop node N cleanly, once its queues keep a majority without it
#   cluster.sh start N       start node N again and wait until it is back in the cluster
#   cluster.sh ctl N ARGS    rabbitmqctl against node N
# Node N listens on AMQP port ITL_CLUSTER_BASE_PORT+N-1 (default 5701..5703), distribution
# port 20000 more (25701..25703), the stream protocol (rabbitmq_stream, advertised on
# 127.0.0.1) on its AMQP port minus 120 (5581..5583: the SDK's default stream port of each
# node's URL), and is named itl-cluster-N@localhost (ITL_CLUSTER_NODE_PREFIX replaces
# itl-cluster, for a second cluster beside it). A node running from before the stream plugin
# was part of this script gets it when it is next started. As rabbitmq.sh, the nodes run their
# Erlang schedulers unbound (RABBITMQ_SCHEDULER_BIND_TYPE=u unless set): three nodes on the
# same cores would otherwise each pin a scheduler to every core.
set -euo pipefail

ITL_RABBITMQ_CLUSTER_HOME=${ITL_RABBITMQ_CLUSTER_HOME:-${XDG_STATE_HOME:-$HOME/.local/state}/itl-workers/rabbitmq-cluster}
ITL_CLUSTER_BASE_PORT=${ITL_CLUSTER_BASE_PORT:-5701}
NODES=(1 2 3)
START_TIMEOUT=${ITL_CLUSTER_START_TIMEOUT:-300}
SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
export ERL_EPMD_ADDRESS=127.0.0.1
export PATH=/usr/lib/rabbitmq/bin:/usr/sbin:$PATH

port() { echo $((ITL_CLUSTER_BASE_PORT + $1 - 1)); }
stream_port() { echo $(($(port "$1") - 120)); }
NODE_PREFIX=${ITL_CLUSTER_NODE_PREFIX:-itl-cluster}
nodename() { echo "$NODE_PREFIX-$1@localhost"; }
home() { echo "$ITL_RABBITMQ_CLUSTER_HOME/n$1"; }

# Runs a command with node N's environment (the same variables rabbitmq.sh sets for its node).
with_node() {
  local n=$1 dir
  shift
  dir=$(home "$n")
  RABBITMQ_NODENAME=$(nodename "$n") \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT=$(port "$n") \
    RABBITMQ_DIST_PORT=$(($(port "$n") + 20000)) \
    RABBITMQ_MNESIA_BASE=$dir/mnesia \
    RABBITMQ_LOG_BASE=$dir/log \
    RABBITMQ_PID_FILE=$dir/rabbitmq.pid \
    RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins \
    RABBITMQ_CONFIG_FILE=$dir/rabbitmq \
    RABBITMQ_SCHEDULER_BIND_TYPE=${RABBITMQ_SCHEDULER_BIND_TYPE:-u} \
    "$@"
}

ctl() {
  local n=$1
  shift
  with_node "$n" rabbitmqctl -n "$(nodename "$n")" "$@"
}

check_node() {
  case "${1:-}" in
    1 | 2 | 3) ;;
    *) echo "node must be 1, 2 or 3, not '${1:-}'" >&2; exit 2 ;;
  esac
}

running() { ctl "$1" -q status >/dev/null 2>&1; }

# The node's process is alive (it may be too busy to answer rabbitmqctl yet).
alive() {
  local pid
  pid=$(cat "$(home "$1")/rabbitmq.pid" 2>/dev/null || true)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

configure() {
  local n=$1 dir
  dir=$(home "$n")
  mkdir -p "$dir/log" "$dir/mnesia"
  echo "[rabbitmq_stream]." >"$dir/enabled_plugins"
  # As rabbitmq.sh: long jobs hold deliveries for up to jobTimeout. A lost node is noticed
  # within seconds (net_ticktime), so quorum queues elect a new leader quickly.
  cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$(port "$n")
consumer_timeout = 86400000
loopback_users = none
net_ticktime = 10
stream.listeners.tcp.default = 127.0.0.1:$(stream_port "$n")
stream.advertised_host = 127.0.0.1
stream.advertised_port = $(stream_port "$n")
EOF
}

launch() {
  local n=$1 dir
  dir=$(home "$n")
  configure "$n"
  # Running, or still booting from an earlier launch: wait for it rather than start another.
  if alive "$n" || launcher_alive "$n"; then return 0; fi
  if listening "$n"; then
    if running "$n"; then return 0; fi
    echo "port $(port "$n") is taken by another process; set ITL_CLUSTER_BASE_PORT" >&2
    exit 1
  fi
  forgotten "$n"
  rm -f "$dir/rabbitmq.pid"
  echo "===== $(date -u +%FT%TZ) starting $(nodename "$n")" >>"$dir/log/console.log"
  # In the background rather than -detached: what the VM prints before its log is set up
  # (a name or port still in use, say) lands in console.log instead of nowhere, and the
  # launcher's pid tells await_node at once that the node died instead of timing out.
  # The subshell lets go of our stdout first, so a caller reading it never waits on the node.
  # From its data directory: a node outlives the checkout that started it, and a VM whose
  # working directory is deleted can no longer spawn anything (os:cmd fails with enoent).
  (
    cd "$dir"
    exec >>"$dir/log/console.log" 2>&1 </dev/null
    with_node "$n" setsid rabbitmq-server
  ) &
  echo "$!" >"$dir/launcher.pid"
}

# The node's AMQP listener accepts connections: it opens last, once the node has booted.
listening() { (exec 3<>/dev/tcp/127.0.0.1/"$(port "$1")") 2>/dev/null; }

launcher_alive() {
  local pid
  pid=$(cat "$(home "$1")/launcher.pid" 2>/dev/null || true)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# Waits (up to 10 s) for the background launcher of node N to exit after its VM did.
launcher_gone() {
  local tries=0
  while launcher_alive "$1" && [ "$tries" -lt 100 ]; do
    tries=$((tries + 1))
    sleep 0.1
  done
}

# Waits (up to 10 s) until epmd no longer lists node N: a node killed a moment ago is
# unregistered when epmd sees its connection close, and a new VM with the same name would
# otherwise exit at once ("the name seems to be in use").
forgotten() {
  local n=$1 tries=0
  while epmd -names 2>/dev/null | grep -q "^name $NODE_PREFIX-$n at"; do
    tries=$((tries + 1))
    if [ "$tries" -ge 100 ]; then return 0; fi
    sleep 0.1
  done
}

# Waits until node N has booted: its AMQP port answers (a cheap probe; every rabbitmqctl call
# starts an Erlang VM, which costs seconds on a loaded machine). Returns 3 at once if the node
# died while starting, 1 after ITL_CLUSTER_START_TIMEOUT seconds.
await_node() {
  local n=$1 dir deadline
  dir=$(home "$n")
  deadline=$((SECONDS + START_TIMEOUT))
  until listening "$n"; do
    if ! launcher_alive "$n" && ! alive "$n"; then
      echo "node $n exited while starting; the end of $dir/log/console.log:" >&2
      tail -n 20 "$dir/log/console.log" >&2
      return 3
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "node $n did not open port $(port "$n") within ${START_TIMEOUT}s; the end of its log:" >&2
      tail -n 20 "$dir/log/$(nodename "$n").log" >&2
      return 1
    fi
    sleep 0.5
  done
  ctl "$n" -q await_startup --timeout 120
}

# Starts node N and waits for it; a VM that exits at once (a name or port its previous life
# still held) is started once more.
boot() {
  local n=$1 rc=0
  launch "$n"
  await_node "$n" || rc=$?
  if [ "$rc" = 3 ]; then
    sleep 2
    launch "$n"
    await_node "$n"
  elif [ "$rc" != 0 ]; then
    return "$rc"
  fi
}

members() { ctl "$1" -q cluster_status --formatter json 2>/dev/null || true; }

# Joins node N to node 1's cluster unless it already is a member.
join() {
  local n=$1
  if members 1 | grep -q "\"$(nodename "$n")\""; then return 0; fi
  ctl "$n" -q stop_app 2>/dev/null
  ctl "$n" -q reset 2>/dev/null
  ctl "$n" -q join_cluster "$(nodename 1)" 2>/dev/null
  ctl "$n" -q start_app 2>/dev/null
}

up() {
  local n rc
  bash "$SCRIPT_DIR/rabbitmq.sh" install
  # Start every stopped node at once: a node that did not stop last waits for its peers.
  for n in "${NODES[@]}"; do launch "$n"; done
  for n in "${NODES[@]}"; do
    rc=0
    await_node "$n" || rc=$?
    if [ "$rc" = 3 ]; then boot "$n"; elif [ "$rc" != 0 ]; then exit "$rc"; fi
  done
  join 2
  join 3
  ctl 1 -q await_online_nodes 3 --timeout 120
  echo "RabbitMQ cluster running: $(urls) (data: $ITL_RABBITMQ_CLUSTER_HOME)"
}

down() {
  for n in 3 2 1; do
    if running "$n"; then ctl "$n" -q stop "$(home "$n")/rabbitmq.pid"; fi
  done
  rm -rf "$ITL_RABBITMQ_CLUSTER_HOME"
  echo "RabbitMQ cluster stopped and its data deleted"
}

status() {
  local all=0 n
  for n in "${NODES[@]}"; do
    if running "$n"; then
      echo "node $n $(nodename "$n") 127.0.0.1:$(port "$n") running"
    else
      echo "node $n $(nodename "$n") 127.0.0.1:$(port "$n") down"
      all=1
    fi
  done
  if [ "$all" = 0 ] && ! ctl 1 -q await_online_nodes 3 --timeout 1 >/dev/null 2>&1; then
    echo "not all three nodes are clustered"
    all=1
  fi
  return "$all"
}

urls() {
  local n out=()
  for n in "${NODES[@]}"; do out+=("amqp://guest:guest@127.0.0.1:$(port "$n")/"); done
  (IFS=,; echo "${out[*]}")
}

kill_node() {
  local n=$1 pid
  check_node "$n"
  pid=$(cat "$(home "$n")/rabbitmq.pid" 2>/dev/null || true)
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "node $n is not running"
    return 0
  fi
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$(home "$n")/rabbitmq.pid"
  launcher_gone "$n"
  forgotten "$n"
  echo "node $n killed (SIGKILL, pid $pid)"
}

stop_node() {
  check_node "$1"
  if running "$1"; then
    # As a rolling upgrade must: first wait until every quorum queue and stream keeps a
    # majority without this node (a node restarted a moment ago may still be catching up;
    # stopping the next one then would leave its queues without a leader).
    with_node "$1" rabbitmq-upgrade -n "$(nodename "$1")" -q await_online_quorum_plus_one -t 300
    ctl "$1" -q stop "$(home "$1")/rabbitmq.pid"
  fi
  launcher_gone "$1"
  echo "node $1 stopped"
}

start_node() {
  check_node "$1"
  boot "$1"
  ctl 1 -q await_online_nodes 3 --timeout 120 2>/dev/null || ctl "$1" -q await_online_nodes 3 --timeout 120
  echo "node $1 running on 127.0.0.1:$(port "$1")"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  urls) urls ;;
  kill) kill_node "${2:-}" ;;
  stop) stop_node "${2:-}" ;;
  start) start_node "${2:-}" ;;
  ctl) check_node "${2:-}"; n=$2; shift 2; ctl "$n" "$@" ;;
  *) echo "usage: $0 up|down|status|urls|kill N|stop N|start N|ctl N ARGS" >&2; exit 2 ;;
esac
