#!/usr/bin/env bash
# Regenerate the Go "tools modules" (go.mod + go.sum) that pin the control-plane binaries.
#
# Why: k8s.io/kubernetes requires its staging modules at v0.0.0 and maps them to ./staging via
# replace directives, which Go ignores outside the main module.  `go install ...@version` is therefore
# impossible; we keep a tiny module per tool family that requires the release and replaces every staging
# module with its published v0.<minor>.<patch> tag.  The replace list is derived from k8s.io/kubernetes'
# own go.mod so that a version bump never needs a hand-edited list.  One module per tool family keeps
# Minimal Version Selection from dragging shared dependencies (grpc, otel, client-go) above what each
# tool was released with.
#
# Run this only when bumping versions.env; build.sh uses the committed go.mod/go.sum as they are.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$HERE/versions.env"
export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

fresh_module() { # dir module-path
  rm -f "$1/go.mod" "$1/go.sum"
  mkdir -p "$1"
  # Pin the language version low (not the local toolchain's patch) so any Go 1.26.x can build it;
  # `go mod tidy` raises it if a dependency demands more.
  (cd "$1" && "$GO" mod init "$2" >/dev/null 2>&1 && "$GO" mod edit -go=1.26.0)
}

gen_k8s() { # dir module-path command...  (commands of k8s.io/kubernetes/cmd at K8S_VERSION)
  local dir=$1 module=$2 staging gomod godebug m c
  shift 2
  staging="v0.${K8S_VERSION#v1.}"
  fresh_module "$dir" "$module"
  cd "$dir"
  gomod=$("$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  "$GO" mod edit -go="$(sed -n 's/^go[[:space:]]\+\([0-9.]\+\)$/\1/p' "$gomod")"
  godebug=$(sed -n 's/^godebug[[:space:]]\+//p' "$gomod" | head -1)
  if [ -n "$godebug" ]; then "$GO" mod edit -godebug="$godebug"; fi
  "$GO" mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
  {
    echo
    echo "// Every staging module k8s.io/kubernetes maps to ./staging, at its published tag."
    echo "replace ("
    for m in $(sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$gomod"); do
      printf '\t%s => %s %s\n' "$m" "$m" "$staging"
    done
    echo ")"
  } >>go.mod
  for c in "$@"; do
    "$GO" mod edit -tool="k8s.io/kubernetes/cmd/$c"
  done
  "$GO" mod tidy
}

gen_simple() { # dir module-path tool-package version-module@version
  fresh_module "$1" "$2"
  cd "$1"
  "$GO" get -tool "$3@$4"
  "$GO" mod tidy
}

# The kind tier's node (tools/kind) pins its own tools modules the same way, from its versions.env.
# shellcheck source=../kind/versions.env
. "$HERE/../kind/versions.env"
KIND_DIR=$(cd "$HERE/../kind" && pwd)

targets=${*:-k8s etcd kwok helm node coredns kind}
for t in $targets; do
  echo "== regenerating $t" >&2
  case $t in
    k8s) gen_k8s "$HERE/k8s" itl.local/controlplane/k8s kube-apiserver kube-controller-manager kube-scheduler kubectl ;;
    node) gen_k8s "$KIND_DIR/node" itl.local/kind/node kubelet kubeadm kube-proxy ;;
    coredns) gen_simple "$KIND_DIR/coredns" itl.local/kind/coredns github.com/coredns/coredns "$COREDNS_VERSION" ;;
    kind) gen_simple "$KIND_DIR/kind" itl.local/kind/kind sigs.k8s.io/kind "$KIND_VERSION" ;;
    etcd) gen_simple "$HERE/etcd" itl.local/controlplane/etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" ;;
    kwok) gen_simple "$HERE/kwok" itl.local/controlplane/kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" ;;
    helm) gen_simple "$HERE/helm" itl.local/controlplane/helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
done
