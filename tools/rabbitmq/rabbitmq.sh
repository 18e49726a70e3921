#!/usr/bin/env bash
# A local RabbitMQ for development, tests and the demo: Debian's rabbitmq-server, listening
# on 127.0.0.1 only, with its data under ${ITL_RABBITMQ_HOME} so it never touches a system
# broker's state.
#   rabbitmq.sh install   install the Debian package if missing
#   rabbitmq.sh up        start (idempotent) and wait until it accepts connections
#   rabbitmq.sh down      stop it
#   rabbitmq.sh status    exit 0 if it runs
# Another node (tests that need their own broker) sets RABBITMQ_NODENAME, RABBITMQ_NODE_PORT,
# RABBITMQ_DIST_PORT and ITL_RABBITMQ_HOME; ITL_RABBITMQ_EXTRA_CONF names a file of
# rabbitmq.conf lines appended to the generated config (a TLS listener, for example), and
# ITL_RABBITMQ_PLUGINS extra plugins to load. The rabbitmq_stream plugin (RESULTS_PROTOCOL=stream)
# is loaded too, listening on 127.0.0.1:ITL_RABBITMQ_STREAM_PORT (default: the AMQP port minus
# 120, so 5552 for 5672 and a port of its own for every other node); when that default port is
# taken, the node starts without it (a port set explicitly must be free). A node that runs
# already without it gets it enabled in place by `up`, without a restart.
# The Erlang schedulers run unbound (RABBITMQ_SCHEDULER_BIND_TYPE=u, unless set) and, as
# RabbitMQ starts them by default, without busy waiting; see "The broker's Erlang runtime"
# in docs/operations.md. Both take effect when the node starts.
set -euo pipefail

ITL_RABBITMQ_HOME=${ITL_RABBITMQ_HOME:-${XDG_STATE_HOME:-$HOME/.local/state}/itl-workers/rabbitmq}
export RABBITMQ_NODENAME=${RABBITMQ_NODENAME:-itl@localhost}
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=${RABBITMQ_NODE_PORT:-5672}
export RABBITMQ_DIST_PORT=${RABBITMQ_DIST_PORT:-25672}
# RabbitMQ pins one scheduler to each core (db); on a machine the broker shares with its
# clients and workers a pinned scheduler waits for its own core while the other may be idle.
export RABBITMQ_SCHEDULER_BIND_TYPE=${RABBITMQ_SCHEDULER_BIND_TYPE:-u}
STREAM_PORT_SET=${ITL_RABBITMQ_STREAM_PORT:+yes}
ITL_RABBITMQ_STREAM_PORT=${ITL_RABBITMQ_STREAM_PORT:-$((RABBITMQ_NODE_PORT - 120))}
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_MNESIA_BASE=$ITL_RABBITMQ_HOME/mnesia
export RABBITMQ_LOG_BASE=$ITL_RABBITMQ_HOME/log
export RABBITMQ_PID_FILE=$ITL_RABBITMQ_HOME/rabbitmq.pid
export RABBITMQ_ENABLED_PLUGINS_FILE=$ITL_RABBITMQ_HOME/enabled_plugins
export RABBITMQ_CONFIG_FILE=$ITL_RABBITMQ_HOME/rabbitmq
export PATH=/usr/lib/rabbitmq/bin:/usr/sbin:$PATH

install() {
  if command -v rabbitmq-server >/dev/null 2>&1; then return 0; fi
  echo "installing Debian's rabbitmq-server" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The package's postinst starts a system broker on port 5672; stop it so ours owns the port.
  apt-get install -y -qq rabbitmq-server >/dev/null
  service rabbitmq-server stop >/dev/null 2>&1 || rabbitmqctl -n rabbit@"$(hostname -s)" stop >/dev/null 2>&1 || true
}

running() { rabbitmqctl -q status >/dev/null 2>&1; }

# Whether a listener could bind 127.0.0.1:PORT now (with SO_REUSEADDR, as the broker's).
port_free() {
  python3 -c 'import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(1)' "$1"
}

up() {
  install
  mkdir -p "$ITL_RABBITMQ_HOME/log" "$ITL_RABBITMQ_HOME/mnesia"
  if running; then
    ensure_stream_plugin
    echo "RabbitMQ already running on 127.0.0.1:$RABBITMQ_NODE_PORT"
    return 0
  fi
  # ITL_RABBITMQ_PLUGINS: comma-separated plugins to load besides rabbitmq_stream.
  local plugins=${ITL_RABBITMQ_PLUGINS:-}
  plugins=${plugins//rabbitmq_stream/}
  # Long jobs hold deliveries unacked for up to jobTimeout: raise the 30-minute default.
  printf 'listeners.tcp.default = 127.0.0.1:%s\nconsumer_timeout = 86400000\nloopback_users = none\n' \
    "$RABBITMQ_NODE_PORT" > "$RABBITMQ_CONFIG_FILE.conf"
  if port_free "$ITL_RABBITMQ_STREAM_PORT"; then
    plugins="rabbitmq_stream,$plugins"
    # The stream protocol on loopback, and advertised there: stream clients connect to the
    # host and port the node advertises.
    printf 'stream.listeners.tcp.default = 127.0.0.1:%s\nstream.advertised_host = 127.0.0.1\nstream.advertised_port = %s\n' \
      "$ITL_RABBITMQ_STREAM_PORT" "$ITL_RABBITMQ_STREAM_PORT" >> "$RABBITMQ_CONFIG_FILE.conf"
  elif [ -n "$STREAM_PORT_SET" ]; then
    echo "stream port $ITL_RABBITMQ_STREAM_PORT is taken; set ITL_RABBITMQ_STREAM_PORT to a free port" >&2
    exit 1
  else
    echo "note: stream port $ITL_RABBITMQ_STREAM_PORT is taken; starting without the stream protocol" >&2
  fi
  plugins=$(echo "$plugins" | sed 's/,,*/,/g; s/^,//; s/,$//')
  echo "[$plugins]." > "$RABBITMQ_ENABLED_PLUGINS_FILE"
  if [ -n "${ITL_RABBITMQ_EXTRA_CONF:-}" ]; then cat "$ITL_RABBITMQ_EXTRA_CONF" >> "$RABBITMQ_CONFIG_FILE.conf"; fi
  if (exec 3<>/dev/tcp/127.0.0.1/"$RABBITMQ_NODE_PORT") 2>/dev/null; then
    echo "port $RABBITMQ_NODE_PORT is taken by another broker; stop it or set RABBITMQ_NODE_PORT" >&2
    exit 1
  fi
  # From its data directory: the broker outlives the checkout that started it, and a VM whose
  # working directory is deleted can no longer spawn anything (os:cmd fails with enoent).
  (cd "$ITL_RABBITMQ_HOME" && rabbitmq-server -detached)
  rabbitmqctl -q wait --timeout 120 "$RABBITMQ_PID_FILE"
  rabbitmqctl -q await_startup --timeout 120
  echo "RabbitMQ running on 127.0.0.1:$RABBITMQ_NODE_PORT (data: $ITL_RABBITMQ_HOME)"
}

# A node started before the stream plugin was part of `up` (or with other plugins) gets it in
# place: its listener settings first (the running node never read them from the config), then
# the plugin, which starts its listener with them. No restart, nobody's connections drop.
ensure_stream_plugin() {
  if rabbitmqctl -q eval 'lists:keymember(rabbitmq_stream, 1, application:which_applications()).' 2>/dev/null | grep -q true; then
    return 0
  fi
  if ! port_free "$ITL_RABBITMQ_STREAM_PORT"; then
    echo "note: stream port $ITL_RABBITMQ_STREAM_PORT is taken; the running node stays without the stream protocol" >&2
    return 0
  fi
  echo "enabling the rabbitmq_stream plugin on the running node (127.0.0.1:$ITL_RABBITMQ_STREAM_PORT)" >&2
  # Not fatal: the broker serves AMQP as before, and what needs the stream port says so.
  if ! rabbitmqctl -q eval "application:load(rabbitmq_stream), application:set_env(rabbitmq_stream, tcp_listeners, [{\"127.0.0.1\", $ITL_RABBITMQ_STREAM_PORT}]), application:set_env(rabbitmq_stream, advertised_host, <<\"127.0.0.1\">>), application:set_env(rabbitmq_stream, advertised_port, $ITL_RABBITMQ_STREAM_PORT)." >/dev/null \
    || ! rabbitmq-plugins -q enable --online rabbitmq_stream >/dev/null; then
    echo "warning: could not enable rabbitmq_stream on the running node; RESULTS_PROTOCOL=stream needs it" >&2
  fi
}

down() {
  if running; then rabbitmqctl -q stop "$RABBITMQ_PID_FILE"; fi
  echo "RabbitMQ stopped"
}

case "${1:-}" in
  install) install ;;
  up) up ;;
  down) down ;;
  status) running ;;
  ctl) shift; rabbitmqctl "$@" ;;
  *) echo "usage: $0 install|up|down|status|ctl ARGS" >&2; exit 2 ;;
esac
