#!/usr/bin/env bash
# Build (or reuse) KEDA's operator and metrics API server, for the side-by-side autoscaler benchmark.
#
# Why from source: the machines have no container engine and no internet except package registries,
# so KEDA's images and release tarballs are out of reach; its Go module is served by the module proxy.
# The committed tools module next to this script (go.mod + go.sum only) requires
# github.com/kedacore/keda/v2 at $KEDA_VERSION and repeats the replace/exclude directives of KEDA's own
# go.mod (Go ignores those outside the main module); `--regen` rewrites it after a version bump.
# KEDA's CRDs are taken from the module source (config/crd/bases), never hand-written.
#
# Output, cached outside the repo:
#
#   ${ITL_KEDA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/itl-workers/keda}/<version>/bin/
#       keda (operator), keda-adapter (metrics API server), keda-crds.yaml
#
# Idempotent: a stamp (hash of go.mod, go.sum, the Go version and this recipe) is checked first, so a
# warm run exits in well under a second.  The bin dir is printed as the LAST line of stdout
# (`--print-bin-dir` prints it without building).  KEDA imports every scaler's SDK (clouds, databases,
# brokers): a cold build takes a long time on 2 cores, so it runs under `nice` and is not part of
# `make install`; only the KEDA benchmark needs it.
#
# Environment:
#   ITL_KEDA_CACHE   cache root (default above)
#   ITL_GO_PARALLEL  go build -p value (default 2)
#   GO               go binary (default: `go` on PATH, else /usr/local/go/bin/go)
set -euo pipefail

KEDA_VERSION=v2.21.0
RECIPE_REV=1 # bump when the build commands below change in a way that alters the binaries
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MODULE=github.com/kedacore/keda/v2
CACHE_ROOT=${ITL_KEDA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/itl-workers/keda}
ROOT=$CACHE_ROOT/$KEDA_VERSION
BIN=$ROOT/bin
OUTPUTS=(keda keda-adapter keda-crds.yaml)

usage() {
  cat <<EOF
usage: build.sh [--print-bin-dir] [--force] [--regen]
Builds KEDA $KEDA_VERSION (operator, metrics API server) and copies its CRDs into
  $BIN
--regen rewrites go.mod/go.sum for KEDA_VERSION (run after bumping it, then commit them).
EOF
}

force=0
regen=0
while [ $# -gt 0 ]; do
  case $1 in
    --print-bin-dir) echo "$BIN"; exit 0 ;;
    --force) force=1 ;;
    --regen) regen=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

if [ -z "${GO:-}" ]; then
  GO=$(command -v go || true)
  [ -n "$GO" ] || GO=/usr/local/go/bin/go
fi
[ -x "$GO" ] || { echo "build.sh: go toolchain not found (set GO=...)" >&2; exit 1; }
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
log() { printf '[keda build.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

regenerate() {
  # KEDA's replace and exclude directives, copied from its go.mod so that a bump needs no hand edit.
  local gomod
  rm -f "$HERE/go.mod" "$HERE/go.sum"
  cd "$HERE"
  GOFLAGS=-mod=mod "$GO" mod init itl.local/tools/keda >/dev/null 2>&1
  gomod=$(GOFLAGS=-mod=mod "$GO" mod download -json "$MODULE@$KEDA_VERSION" |
    python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  "$GO" mod edit -go="$(sed -n 's/^go[[:space:]]\+\([0-9.]\+\)$/\1/p' "$gomod")"
  sed -n 's/^replace[[:space:]]\+\(.*\)[[:space:]]=>[[:space:]]\(.*\)$/\1 \2/p' "$gomod" |
    while read -r old oldv new newv; do "$GO" mod edit -replace="$old@$oldv=$new@$newv"; done
  sed -n 's/^exclude[[:space:]]\+\([^[:space:]]*\)[[:space:]]\+\([^[:space:]]*\)$/\1@\2/p' "$gomod" |
    while read -r ex; do "$GO" mod edit -exclude="$ex"; done
  GOFLAGS=-mod=mod "$GO" get -tool "$MODULE/cmd/operator@$KEDA_VERSION" "$MODULE/cmd/adapter@$KEDA_VERSION"
  GOFLAGS=-mod=mod "$GO" mod tidy
}

if [ "$regen" = 1 ]; then
  regenerate
  exit 0
fi

export GOFLAGS="-mod=readonly -buildvcs=false -p=${ITL_GO_PARALLEL:-2}"

stamp() {
  { echo "rev=$RECIPE_REV version=$KEDA_VERSION goversion=$("$GO" env GOVERSION)"; cat "$HERE/go.mod" "$HERE/go.sum"; } |
    sha256sum | cut -d' ' -f1
}

is_fresh() {
  local f
  [ "$force" = 0 ] && [ -f "$BIN/.stamp" ] && [ "$(cat "$BIN/.stamp")" = "$(stamp)" ] || return 1
  for f in "${OUTPUTS[@]}"; do [ -s "$BIN/$f" ] || return 1; done
}

build() { # staging-dir
  local ldf src f
  ldf="-s -w -X $MODULE/version.Version=${KEDA_VERSION#v} -X $MODULE/version.GitCommit=$KEDA_VERSION"
  cd "$HERE"
  nice -n 15 "$GO" build -trimpath -ldflags="$ldf" -o "$1/keda" "$MODULE/cmd/operator"
  nice -n 15 "$GO" build -trimpath -ldflags="$ldf" -o "$1/keda-adapter" "$MODULE/cmd/adapter"
  src=$("$GO" list -m -f '{{.Dir}}' "$MODULE")
  : >"$1/keda-crds.yaml"
  for f in "$src"/config/crd/bases/*.yaml; do
    { echo "---"; cat "$f"; } >>"$1/keda-crds.yaml"
  done
}

mkdir -p "$BIN"
exec 9>"$ROOT/.build.lock"
flock 9
if ! is_fresh; then
  log "building KEDA $KEDA_VERSION (${OUTPUTS[*]}) with $("$GO" env GOVERSION), GOFLAGS=$GOFLAGS"
  stage=$(mktemp -d "$ROOT/.stage.XXXXXX")
  start=$(date +%s)
  if ! (build "$stage"); then
    rm -rf "$stage"
    log "FAILED building KEDA"
    exit 1
  fi
  # Rename into place so an interrupted build never leaves a half-written binary a warm run trusts.
  for f in "${OUTPUTS[@]}"; do mv -f "$stage/$f" "$BIN/$f"; done
  stamp >"$BIN/.stamp"
  rm -rf "$stage"
  log "built KEDA in $(($(date +%s) - start))s"
fi
echo "$BIN"
