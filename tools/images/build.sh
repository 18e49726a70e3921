#!/usr/bin/env bash
# Build the project's images, and the local base images they need where no image registry is
# reachable.
#
#   build.sh project [TAG]   itl-controlplane-worker:TAG and itl-controlplane-operator:TAG
#   build.sh debian          itl-local/debian:bookworm (debootstrap + docker import)
#   build.sh python          itl-local/python:3.11-bookworm (python3, venv, pip from Debian)
#   build.sh python-image    print the PYTHON_IMAGE `project` builds on (building it if needed)
#
# PYTHON_IMAGE (default: the Dockerfile's, the official python slim image) is used when it is
# present or can be pulled; otherwise the local Python base is built and used instead, and the
# build says so. Local bases carry a label `itl.stamp` = hash of their recipe, the Debian mirror
# and the host's extra CA certificates; a base whose stamp matches is reused (warm: a second).
# Everything runs with `--network host`: the engine started by tools/docker/engine.sh does not
# forward packets, so containers on its bridge could not reach the package registries.
# Environment: PYTHON_IMAGE, ITL_PULL_TIMEOUT (seconds, default 60), ITL_IMAGES_STATE.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
RECIPE_REV=1
SUITE=bookworm
DEBIAN_IMAGE=itl-local/debian:$SUITE
LOCAL_PYTHON_IMAGE=itl-local/python:3.11-$SUITE
DEFAULT_PYTHON_IMAGE=$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$REPO/Dockerfile")
STATE=${ITL_IMAGES_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/itl-workers/images}
EXTRA_CA_DIR=/usr/local/share/ca-certificates

say() { printf '[images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'images/build.sh: %s\n' "$*" >&2; exit 1; }

# The Debian mirror this machine's apt uses (deb822 .sources or one-line sources.list), so the
# image installs from the same place (and nothing names a mirror in the repository).
debian_mirror() {
  local mirror
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2; exit}')
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 !~ /^\[/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list{,.d}"
  echo "$mirror"
}

extra_ca_hash() { cat "$EXTRA_CA_DIR"/*.crt 2>/dev/null | sha256sum | cut -c1-16; }

image_stamp() { docker image inspect --format '{{ index .Config.Labels "itl.stamp" }}' "$1" 2>/dev/null || true; }

debian_stamp() {
  printf 'rev=%s suite=%s mirror=%s ca=%s\n' "$RECIPE_REV" "$SUITE" "$(debian_mirror)" "$(extra_ca_hash)" \
    | cat - "$HERE/build.sh" | sha256sum | cut -c1-16
}

build_debian() {
  local stamp root start
  stamp=$(debian_stamp)
  [ "$(image_stamp "$DEBIAN_IMAGE")" = "$stamp" ] && return 0
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is missing (make install-docker, or apt-get install debootstrap)"
  [ "$(id -u)" = 0 ] || die "debootstrap needs root"
  mkdir -p "$STATE"
  rm -rf "$STATE"/rootfs.* # left by an interrupted build
  root=$(mktemp -d "$STATE/rootfs.XXXXXX")
  say "debootstrap $SUITE (minbase) from $(debian_mirror)"
  start=$(date +%s)
  nice -n 10 debootstrap --variant=minbase "$SUITE" "$root" "$(debian_mirror)" >"$STATE/debootstrap.log" 2>&1 \
    || { rm -rf "$root"; die "debootstrap failed; see $STATE/debootstrap.log"; }
  # The host's extra CA certificates (a TLS-inspecting proxy in front of the package index needs
  # them in every build): here, so each image built on this base gets them with ca-certificates.
  mkdir -p "$root$EXTRA_CA_DIR"
  if compgen -G "$EXTRA_CA_DIR/*.crt" >/dev/null; then cp "$EXTRA_CA_DIR"/*.crt "$root$EXTRA_CA_DIR/"; fi
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import --change "LABEL itl.stamp=$stamp" - "$DEBIAN_IMAGE" >/dev/null
  rm -rf "$root"
  say "built $DEBIAN_IMAGE in $(( $(date +%s) - start ))s"
}

build_python() {
  local stamp start
  build_debian
  stamp=$( { image_stamp "$DEBIAN_IMAGE"; cat "$HERE/python-base.Dockerfile"; } | sha256sum | cut -c1-16)
  [ "$(image_stamp "$LOCAL_PYTHON_IMAGE")" = "$stamp" ] && return 0
  start=$(date +%s)
  nice -n 10 docker build -q --network host - <"$HERE/python-base.Dockerfile" \
    --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" --label "itl.stamp=$stamp" -t "$LOCAL_PYTHON_IMAGE" >/dev/null
  say "built $LOCAL_PYTHON_IMAGE in $(( $(date +%s) - start ))s"
}

# The base the project's Dockerfile builds on: PYTHON_IMAGE if present or pullable, else local.
python_image() {
  local wanted=${PYTHON_IMAGE:-$DEFAULT_PYTHON_IMAGE}
  if docker image inspect "$wanted" >/dev/null 2>&1; then echo "$wanted"; return; fi
  if timeout "${ITL_PULL_TIMEOUT:-60}" docker pull -q "$wanted" >/dev/null 2>&1; then echo "$wanted"; return; fi
  say "cannot pull $wanted (no image registry reachable?): using $LOCAL_PYTHON_IMAGE built from Debian packages"
  build_python
  echo "$LOCAL_PYTHON_IMAGE"
}

build_project() {
  local tag=${1:-dev} base target start
  base=$(python_image)
  for target in worker operator; do
    start=$(date +%s)
    nice -n 10 docker build -q --network host --build-arg "PYTHON_IMAGE=$base" --target "$target" \
      -t "itl-controlplane-$target:$tag" "$REPO" >/dev/null
    say "built itl-controlplane-$target:$tag on $base in $(( $(date +%s) - start ))s"
  done
}

bash "$REPO/tools/docker/engine.sh" ensure
case ${1:-} in
  project) build_project "${2:-dev}" ;;
  debian) build_debian ;;
  python) build_python ;;
  python-image) python_image ;;
  *) echo "usage: build.sh project [TAG] | debian | python | python-image" >&2; exit 2 ;;
esac
