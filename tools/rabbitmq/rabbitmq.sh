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
# ITL_RABBITMQ_PLUGINS the plugins to load (rabbitmq_stream for bench/results_path.py).
set -euo pipefail

ITL_RABBITMQ_HOME=${ITL_RABBITMQ_HOME:-${XDG_STATE_HOME:-$HOME/.local/state}/itl-workers/rabbitmq}
export RABBITMQ_NODENAME=${RABBITMQ_NODENAME:-itl@localhost}
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=${RABBITMQ_NODE_PORT:-5672}
export RABBITMQ_DIST_PORT=${RABBITMQ_DIST_PORT:-25672}
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

up() {
  install
  mkdir -p "$ITL_RABBITMQ_HOME/log" "$ITL_RABBITMQ_HOME/mnesia"
  # ITL_RABBITMQ_PLUGINS: comma-separated plugins to load (e.g. rabbitmq_stream, whose listener
  # then goes into ITL_RABBITMQ_EXTRA_CONF); none by default.
  echo "[${ITL_RABBITMQ_PLUGINS:-}]." > "$RABBITMQ_ENABLED_PLUGINS_FILE"
  # Long jobs hold deliveries unacked for up to jobTimeout: raise the 30-minute default.
  printf 'listeners.tcp.default = 127.0.0.1:%s\nconsumer_timeout = 86400000\nloopback_users = none\n' \
    "$RABBITMQ_NODE_PORT" > "$RABBITMQ_CONFIG_FILE.conf"
  if [ -n "${ITL_RABBITMQ_EXTRA_CONF:-}" ]; then cat "$ITL_RABBITMQ_EXTRA_CONF" >> "$RABBITMQ_CONFIG_FILE.conf"; fi
  if running; then echo "RabbitMQ already running on 127.0.0.1:$RABBITMQ_NODE_PORT"; return 0; fi
  if (exec 3<>/dev/tcp/127.0.0.1/"$RABBITMQ_NODE_PORT") 2>/dev/null; then
    echo "port $RABBITMQ_NODE_PORT is taken by another broker; stop it or set RABBITMQ_NODE_PORT" >&2
    exit 1
  fi
  rabbitmq-server -detached
  rabbitmqctl -q wait --timeout 120 "$RABBITMQ_PID_FILE"
  rabbitmqctl -q await_startup --timeout 120
  echo "RabbitMQ running on 127.0.0.1:$RABBITMQ_NODE_PORT (data: $ITL_RABBITMQ_HOME)"
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
