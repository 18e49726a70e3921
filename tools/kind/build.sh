#!/usr/bin/env bash
# Build (or reuse) kind and its node image, from the Go module proxy and Debian packages only.
#
#   build.sh                   kind + the node image + the in-cluster RabbitMQ image
#   build.sh --print-kind      path of the kind binary (no build)
#   build.sh --print-node-image  name of the node image (no build)
#
# Why: no image registry is reachable here, so neither kindest/node nor kind's
# `kind build node-image` (which pulls its base and kindnetd) can be used. This builds what
# kindest/node holds, at the Kubernetes version of tools/controlplane/versions.env:
#   binaries  kind, kubelet, kubeadm, kube-proxy, CoreDNS (Go module proxy, tools modules next to
#             this script) and pause (Kubernetes' pause.c, gcc -static); kube-apiserver,
#             kube-controller-manager, kube-scheduler, kubectl and etcd come from
#             tools/controlplane/build.sh (the kwok tier's binaries, same version);
#   images    one per component kubeadm asks for (`kubeadm config images list`), tagged as it
#             expects, on the local Debian base (tools/images/build.sh debian); the node image
#             (images/node.Dockerfile) with those preloaded into its containerd; RabbitMQ from
#             Debian's rabbitmq-server for the in-cluster broker.
# Binaries are cached in ${ITL_KIND_CACHE:-~/.cache/itl-workers/kind}/<k8s-version>/bin with a stamp
# per family (as tools/controlplane/build.sh does); images carry a label `itl.stamp` = hash of
# their inputs. A warm run checks stamps and takes seconds.
set -euo pipefail

RECIPE_REV=1 # bump when a build command below changes what it produces
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=../controlplane/versions.env
. "$REPO/tools/controlplane/versions.env"
# shellcheck source=versions.env
. "$HERE/versions.env"

CACHE_ROOT=${ITL_KIND_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/itl-workers/kind}
ROOT=$CACHE_ROOT/$K8S_VERSION
BIN=$ROOT/bin
NODE_IMAGE=itl-local/kind-node:$K8S_VERSION
RABBITMQ_IMAGE=itl-local/rabbitmq:debian-bookworm
DEBIAN_IMAGE=itl-local/debian:bookworm

only=()
while [ $# -gt 0 ]; do
  case $1 in
    --print-kind) echo "$BIN/kind"; exit 0 ;;
    --print-node-image) echo "$NODE_IMAGE"; exit 0 ;;
    --print-rabbitmq-image) echo "$RABBITMQ_IMAGE"; exit 0 ;;
    --only) shift; only+=("$1") ;; # binaries only: kind|node|coredns|pause
    *) echo "usage: build.sh [--print-kind|--print-node-image|--print-rabbitmq-image|--only FAMILY...]" >&2; exit 2 ;;
  esac
  shift
done

if [ -z "${GO:-}" ]; then
  GO=$(command -v go || true)
  [ -n "$GO" ] || GO=/usr/local/go/bin/go
fi
[ -x "$GO" ] || { echo "tools/kind/build.sh: no go toolchain (set GO=...)" >&2; exit 1; }
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false -p=${ITL_GO_PARALLEL:-2}"

log() { printf '[kind/build.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'tools/kind/build.sh: %s\n' "$*" >&2; exit 1; }

# -- binaries --------------------------------------------------------------------------------

family_bins() {
  case $1 in
    kind) echo kind ;;
    node) echo kubelet kubeadm kube-proxy ;;
    coredns) echo coredns ;;
    pause) echo pause ;;
  esac
}

family_stamp() {
  {
    echo "rev=$RECIPE_REV family=$1 goversion=$("$GO" env GOVERSION) k8s=$K8S_VERSION"
    cat "$HERE/versions.env"
    case $1 in
      pause) gcc --version | head -1 ;;
      *) cat "$HERE/$1/go.mod" "$HERE/$1/go.sum" ;;
    esac
  } | sha256sum | cut -c1-16
}

is_fresh() {
  local f
  [ -f "$BIN/.stamp-$1" ] && [ "$(cat "$BIN/.stamp-$1")" = "$(family_stamp "$1")" ] || return 1
  for f in $(family_bins "$1"); do [ -s "$BIN/$f" ] || return 1; done
}

build_kind() {
  (cd "$HERE/kind" && nice -n 10 "$GO" build -trimpath -ldflags="-s -w" -o "$1/kind" sigs.k8s.io/kind)
}

build_node() {
  local minor ldf p
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  ldf="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  (cd "$HERE/node" && nice -n 10 "$GO" build -trimpath -tags=notest,grpcnotrace -ldflags="$ldf" -o "$1/" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubeadm k8s.io/kubernetes/cmd/kube-proxy)
}

build_coredns() {
  (cd "$HERE/coredns" && nice -n 10 "$GO" build -trimpath -ldflags="-s -w" -o "$1/coredns" github.com/coredns/coredns)
}

build_pause() {
  local src
  src=$(cd "$HERE/node" && "$GO" list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
  command -v gcc >/dev/null 2>&1 || die "gcc is needed for the pause binary (apt-get install gcc libc6-dev)"
  gcc -Os -Wall -Werror -static -DVERSION="v$(pause_tag)-itl" -o "$1/pause" "$src"
}

build_family() {
  local stage start f
  is_fresh "$1" && return 0
  log "building $1 ($(family_bins "$1" | tr ' ' ','))"
  stage=$(mktemp -d "$ROOT/.stage-$1.XXXXXX")
  start=$(date +%s)
  "build_$1" "$stage" || { rm -rf "$stage"; die "FAILED building $1"; }
  for f in $(family_bins "$1"); do mv -f "$stage/$f" "$BIN/$f"; done
  family_stamp "$1" >"$BIN/.stamp-$1"
  rm -rf "$stage"
  log "built $1 in $(( $(date +%s) - start ))s"
}

# -- images ----------------------------------------------------------------------------------

image_stamp() { docker image inspect --format '{{ index .Config.Labels "itl.stamp" }}' "$1" 2>/dev/null || true; }
image_id() { docker image inspect --format '{{.Id}}' "$1"; }

# build_image NAME STAMP DOCKERFILE CONTEXT [docker build args...]: skipped when the stamp matches.
build_image() {
  local name=$1 stamp=$2 dockerfile=$3 context=$4 start
  shift 4
  [ "$(image_stamp "$name")" = "$stamp" ] && return 0
  start=$(date +%s)
  nice -n 10 docker build -q --network host -f "$dockerfile" --label "itl.stamp=$stamp" \
    --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" "$@" -t "$name" "$context" >/dev/null \
    || die "docker build of $name failed"
  log "built $name in $(( $(date +%s) - start ))s"
}

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

KUBEADM_IMAGES=
kubeadm_images() { # what this kubeadm pulls at init, asked once
  [ -n "$KUBEADM_IMAGES" ] || KUBEADM_IMAGES=$("$BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null)
  echo "$KUBEADM_IMAGES"
  [ -n "$KUBEADM_IMAGES" ] || die "kubeadm config images list gave nothing"
}
pause_tag() { kubeadm_images | sed -n 's#.*/pause:##p'; }

# One directory holding just the files a build needs (docker sends the whole context).
context_with() { # dir files...
  local dir=$1 f
  shift
  rm -rf "$dir" && mkdir -p "$dir"
  for f in "$@"; do cp -a "$f" "$dir/"; done
}

build_component_images() { # control-plane bin dir
  local cp_bin=$1 ref name base stamp family ctx=$ROOT/.ctx
  PRELOAD=()
  local debian_stamp
  debian_stamp=$(image_stamp "$DEBIAN_IMAGE")
  for ref in $(kubeadm_images); do
    name=${ref##*/}; base=${name%%:*}
    PRELOAD+=("$ref")
    case $base in
      kube-apiserver|kube-controller-manager|kube-scheduler|etcd)
        family=k8s; [ "$base" = etcd ] && family=etcd
        stamp=$( { echo "$debian_stamp"; cat "$HERE/images/component.Dockerfile" "$cp_bin/.stamp-$family"; } | stamp_of)
        [ "$(image_stamp "$ref")" = "$stamp" ] && continue
        context_with "$ctx" "$cp_bin/$base"
        build_image "$ref" "$stamp" "$HERE/images/component.Dockerfile" "$ctx" --build-arg "BIN=$base" ;;
      kube-proxy|coredns)
        family=node; [ "$base" = coredns ] && family=coredns
        stamp=$( { echo "$debian_stamp"; cat "$HERE/images/$base.Dockerfile" "$BIN/.stamp-$family"; } | stamp_of)
        [ "$(image_stamp "$ref")" = "$stamp" ] && continue
        context_with "$ctx" "$BIN/$base"
        build_image "$ref" "$stamp" "$HERE/images/$base.Dockerfile" "$ctx" ;;
      pause)
        stamp=$(stamp_of "$HERE/images/pause.Dockerfile" "$BIN/.stamp-pause")
        [ "$(image_stamp "$ref")" = "$stamp" ] && continue
        context_with "$ctx" "$BIN/pause"
        build_image "$ref" "$stamp" "$HERE/images/pause.Dockerfile" "$ctx" ;;
      *) die "kubeadm asks for $ref, which this script does not know how to build" ;;
    esac
  done
  rm -rf "$ctx"
}

build_node_image() { # control-plane bin dir
  local cp_bin=$1 kind_dir stamp ctx=$ROOT/.ctx-node id ref start
  kind_dir=$(cd "$HERE/kind" && "$GO" list -m -f '{{.Dir}}' sigs.k8s.io/kind)
  stamp=$( {
    echo "rev=$RECIPE_REV"
    image_stamp "$DEBIAN_IMAGE"
    cat "$HERE/images/node.Dockerfile" "$HERE"/node-files/* "$BIN/.stamp-node" "$BIN/.stamp-kind" "$cp_bin/.stamp-k8s"
    for ref in "${PRELOAD[@]}"; do echo "$ref $(image_id "$ref")"; done
  } | stamp_of)
  [ "$(image_stamp "$NODE_IMAGE")" = "$stamp" ] && return 0
  start=$(date +%s)
  rm -rf "$ctx" && mkdir -p "$ctx/bin"
  cp -a "$kind_dir/images/base/files" "$ctx/kind-files" && chmod -R u+w "$ctx/kind-files"
  cp -a "$HERE/node-files" "$ctx/node-files"
  cp "$BIN/kubelet" "$BIN/kubeadm" "$cp_bin/kubectl" "$ctx/bin/"
  nice -n 10 docker build -q --network host -f "$HERE/images/node.Dockerfile" \
    --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" --build-arg "K8S_VERSION=$K8S_VERSION" \
    --build-arg "PAUSE_IMAGE=$(kubeadm_images | grep /pause:)" -t "$NODE_IMAGE-stage" "$ctx" >/dev/null \
    || die "docker build of the node image failed"
  rm -rf "$ctx"
  # Preload the images into the node's containerd (k8s.io namespace, as the kubelet's CRI sees
  # it), as kind's node-image builder does: a throw-away container, then commit.
  id=$(docker run -d --rm --privileged --init --entrypoint sleep "$NODE_IMAGE-stage" infinity)
  if ! {
    docker exec "$id" sh -c 'containerd >/tmp/containerd.log 2>&1 & for _ in $(seq 1 50); do ctr version >/dev/null 2>&1 && exit 0; sleep 0.2; done; cat /tmp/containerd.log; exit 1' \
      && docker save "${PRELOAD[@]}" | docker exec -i "$id" ctr --namespace=k8s.io images import --all-platforms --no-unpack - >/dev/null \
      && docker exec "$id" sh -c 'pkill containerd; while pgrep containerd >/dev/null; do sleep 0.2; done; rm -f /tmp/containerd.log' \
      && docker commit --change 'ENTRYPOINT ["/usr/local/bin/itl-node-entrypoint", "/usr/local/bin/entrypoint", "/sbin/init"]' \
        --change 'CMD []' --change "LABEL itl.stamp=$stamp" "$id" "$NODE_IMAGE" >/dev/null
  }; then
    docker rm -f "$id" >/dev/null
    die "preloading images into the node image failed"
  fi
  docker rm -f "$id" >/dev/null
  docker rmi "$NODE_IMAGE-stage" >/dev/null
  log "built $NODE_IMAGE in $(( $(date +%s) - start ))s"
}

build_rabbitmq_image() {
  local stamp
  stamp=$( { image_stamp "$DEBIAN_IMAGE"; cat "$HERE/images/rabbitmq.Dockerfile"; } | stamp_of)
  context_with "$ROOT/.ctx"
  build_image "$RABBITMQ_IMAGE" "$stamp" "$HERE/images/rabbitmq.Dockerfile" "$ROOT/.ctx"
  rm -rf "$ROOT/.ctx"
}

mkdir -p "$BIN"
exec 9>"$ROOT/.build.lock"
flock 9

if [ ${#only[@]} -gt 0 ]; then
  for family in "${only[@]}"; do build_family "$family"; done
  exit 0
fi
for family in kind node coredns pause; do build_family "$family"; done
cp_bin=$(bash "$REPO/tools/controlplane/build.sh" --only k8s --only etcd | tail -n 1)
kubeadm_images >/dev/null
bash "$REPO/tools/images/build.sh" debian
build_component_images "$cp_bin"
build_node_image "$cp_bin"
build_rabbitmq_image
echo "$BIN/kind"
