#!/usr/bin/env bash
# Build (or reuse) the binaries of the local Kubernetes control plane used by integration tests.
#
# Why this exists: the project's machines have no Docker engine and no internet except package
# registries, so kind/k3d/envtest downloads are impossible.  Everything is built from source fetched
# through the Go module proxy, using the committed tools modules next to this script
# (k8s/, etcd/, kwok/, helm/ — go.mod + go.sum only), and cached outside the repo:
#
#   ${ITL_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/itl-workers/k8s}/<k8s-version>/bin
#
# The build is idempotent: each tool family has a stamp (hash of versions + its go.mod/go.sum + this
# script's recipe revision); a warm run only checks stamps and exits in well under a second.
# The bin dir is printed as the LAST line of stdout (`--print-bin-dir` prints it without building).
#
# Environment:
#   ITL_K8S_CACHE      cache root (default above)
#   ITL_GO_PARALLEL    go build -p value (default 2: the CI machine has 2 shared cores)
#   GO                 go binary (default: `go` on PATH, else /usr/local/go/bin/go)
set -euo pipefail

RECIPE_REV=3 # bump when the build commands below change in a way that alters the binaries
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$HERE/versions.env"

CACHE_ROOT=${ITL_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/itl-workers/k8s}
ROOT=$CACHE_ROOT/$K8S_VERSION
BIN=$ROOT/bin

usage() {
  cat <<EOF
usage: build.sh [--print-bin-dir] [--force] [--only k8s|etcd|kwok|helm ...]
Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl ($K8S_VERSION),
etcd ($ETCD_VERSION), kwok ($KWOK_VERSION) and helm ($HELM_VERSION) into
  $BIN
EOF
}

force=0
only=()
while [ $# -gt 0 ]; do
  case $1 in
    --print-bin-dir) echo "$BIN"; exit 0 ;;
    --force) force=1 ;;
    --only) shift; only+=("$1") ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
[ ${#only[@]} -gt 0 ] || only=(etcd k8s kwok helm)

if [ -z "${GO:-}" ]; then
  GO=$(command -v go || true)
  [ -n "$GO" ] || GO=/usr/local/go/bin/go
fi

# Reproducible, static, offline-friendly builds that never rewrite the committed go.mod/go.sum.
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false -p=${ITL_GO_PARALLEL:-2}"

log() { printf '[build.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

family_bins() {
  case $1 in
    k8s) echo kube-apiserver kube-controller-manager kube-scheduler kubectl ;;
    etcd) echo etcd ;;
    kwok) echo kwok kwok-stages.yaml ;;
    helm) echo helm ;;
  esac
}

if [ ! -x "$GO" ]; then
  # Without Go the stamps cannot be checked; binaries already in the cache are still usable.
  for fam in "${only[@]}"; do
    for f in $(family_bins "$fam"); do
      [ -s "$BIN/$f" ] || { echo "build.sh: go toolchain not found (set GO=...) and $BIN/$f is missing" >&2; exit 1; }
    done
  done
  echo "build.sh: go toolchain not found; using the cached binaries unverified" >&2
  echo "$BIN"
  exit 0
fi

family_stamp() {
  {
    echo "rev=$RECIPE_REV family=$1 goversion=$("$GO" env GOVERSION)"
    cat "$HERE/versions.env" "$HERE/$1/go.mod" "$HERE/$1/go.sum"
  } | sha256sum | cut -d' ' -f1
}

is_fresh() {
  local f stamp_file=$BIN/.stamp-$1
  [ "$force" = 0 ] || return 1
  [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$(family_stamp "$1")" ] || return 1
  for f in $(family_bins "$1"); do [ -s "$BIN/$f" ] || return 1; done
}

# Writes into a staging dir and renames into place so an interrupted build never leaves a
# half-written binary that a later warm run would trust.
install_from() { # staging-dir family
  local f
  for f in $(family_bins "$2"); do mv -f "$1/$f" "$BIN/$f"; done
  family_stamp "$2" >"$BIN/.stamp-$2"
}

build_k8s() {
  local out=$1 minor date ldf p
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  ldf="-s -w"
  # Stamp the real release so /version, kubectl skew checks and Helm's kubeVersion see v1.x.y,
  # not v0.0.0-master (see component-base/version/base.go).
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldf="$ldf -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  (cd "$HERE/k8s" && "$GO" build -trimpath -tags=notest,grpcnotrace -ldflags="$ldf" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
}

build_etcd() {
  # etcd's version is a compile-time constant of go.etcd.io/etcd/api/v3/version: no stamping needed.
  (cd "$HERE/etcd" && "$GO" build -trimpath -ldflags="-s -w" -o "$1/etcd" go.etcd.io/etcd/server/v3)
}

build_kwok() {
  local dir f
  (cd "$HERE/kwok" && "$GO" build -trimpath -ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" \
    -o "$1/kwok" sigs.k8s.io/kwok/cmd/kwok)
  # Standalone kwok refuses to run without Stage objects; ship kwok's own "fast" stage set
  # (kustomize/stage/fast = node-initialize + heartbeat-with-lease + pod ready/complete/delete)
  # next to the binary so the harness needs no Go toolchain at run time.
  dir=$(cd "$HERE/kwok" && "$GO" list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  : >"$1/kwok-stages.yaml"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    { echo "---"; cat "$dir/kustomize/stage/$f"; } >>"$1/kwok-stages.yaml"
  done
}

build_helm() {
  (cd "$HERE/helm" && "$GO" build -trimpath \
    -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" -o "$1/helm" helm.sh/helm/v3/cmd/helm)
}

mkdir -p "$BIN"
# Nothing to build: answer without waiting for another invocation that builds other families.
all_fresh=1
for fam in "${only[@]}"; do is_fresh "$fam" 2>/dev/null || all_fresh=0; done
if [ "$all_fresh" = 1 ]; then
  echo "$BIN"
  exit 0
fi
# Serialise concurrent invocations (e.g. CI and a developer shell) on the same cache.
exec 9>"$ROOT/.build.lock"
flock 9

for fam in "${only[@]}"; do
  case $fam in k8s|etcd|kwok|helm) ;; *) echo "unknown family: $fam" >&2; exit 2 ;; esac
  if is_fresh "$fam"; then
    continue
  fi
  log "building $fam ($(family_bins "$fam" | tr ' ' ',')) with $("$GO" env GOVERSION), GOFLAGS=$GOFLAGS"
  stage=$(mktemp -d "$ROOT/.stage-$fam.XXXXXX")
  start=$(date +%s)
  if ! "build_$fam" "$stage"; then
    rm -rf "$stage"
    log "FAILED building $fam"
    exit 1
  fi
  install_from "$stage" "$fam"
  rm -rf "$stage"
  log "built $fam in $(( $(date +%s) - start ))s"
done

"$BIN/kube-apiserver" --version >&2 2>/dev/null || true
echo "$BIN"
