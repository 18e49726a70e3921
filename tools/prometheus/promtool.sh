#!/usr/bin/env bash
# promtool, the Prometheus rule checker the alert-rule tests run, from Debian's prometheus package.
#   promtool.sh install   install the package if promtool is missing (no Prometheus server is
#                         left running: the tests need only the promtool binary)
#   promtool.sh path      print promtool's path, exit 1 if it is not installed
set -euo pipefail

path() { command -v promtool 2>/dev/null || { [ -x /usr/bin/promtool ] && echo /usr/bin/promtool; }; }

install() {
  if path >/dev/null; then return 0; fi
  echo "installing Debian's prometheus package (for promtool)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Without recommends: no node exporter. The package's postinst may start a Prometheus server
  # listening on every address; stop it, the tests only run promtool.
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  service prometheus stop >/dev/null 2>&1 || true
}

case "${1:-}" in
  install) install ;;
  path) path ;;
  *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
