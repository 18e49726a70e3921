#!/usr/bin/env bash
# The e2e suite on kind: real kubelet, real pods, the project's own images (`make e2e-kind`).
# Needs root or a Docker engine, Go and the project's Python environment (make python-deps);
# everything else (dockerd, kind, the node image, the images) is built or started by
# tools/docker, tools/images and tools/kind, offline from package registries.
#
#   e2e/kind.sh [pytest args]   create the cluster, build and load the images, run, tear down
#   KEEP_CLUSTER=1 e2e/kind.sh  keep the cluster afterwards (bash tools/kind/cluster.sh down itl-e2e)
#
# It runs the same tests as on the local control plane (pytest e2e), switched to in-cluster
# workloads by the variables e2e/conftest.py documents: the chart's Deployment is the
# operator, the pool's pods are the workers, and RabbitMQ runs in the cluster
# (manifests/rabbitmq-dev on an image of Debian's rabbitmq-server), reached by the tests through
# a port-forward. The kind-only tests in e2e/realpods run too. Missing Docker fails.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER=${KIND_CLUSTER_NAME:-itl-e2e}
CONTEXT=kind-$CLUSTER
TAG=${ITL_E2E_IMAGE_TAG:-e2e}
BROKER_NS=itl-e2e-broker
PYTHON=${PYTHON:-python}
OPERATOR_IMAGE=itl-controlplane-operator:$TAG
WORKER_IMAGE=itl-controlplane-worker:$TAG
KIND_CLUSTER_SH=$REPO/tools/kind/cluster.sh
# The cluster's kubeconfig stays out of ~/.kube/config (a shared machine's).
export KUBECONFIG=${ITL_KIND_KUBECONFIG:-${XDG_CACHE_HOME:-$HOME/.cache}/itl-workers/kind/state/$CLUSTER.kubeconfig}

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'kind.sh: %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON is not on PATH (make python-deps)"
bash "$REPO/tools/docker/engine.sh" ensure || die "the kind tier needs a Docker engine"
BIN=$(bash "$REPO/tools/controlplane/build.sh" | tail -n 1)
RABBITMQ_IMAGE=$(bash "$REPO/tools/kind/build.sh" --print-rabbitmq-image)
mkdir -p "$(dirname "$KUBECONFIG")"

# Local end of the port-forward: a free port (not 35672-35682, where RabbitMQ's CLI tools listen).
BROKER_PORT=${ITL_E2E_BROKER_PORT:-$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
forward_pid=
cleanup() {
  local status=$?
  if [ -n "$forward_pid" ]; then
    local children
    children=$(pgrep -P "$forward_pid" || true) # its kubectl, by parent pid
    kill "$forward_pid" $children 2>/dev/null || true
  fi
  if [ "${KEEP_CLUSTER:-0}" = 1 ]; then
    log "kept cluster $CLUSTER (KUBECONFIG=$KUBECONFIG; delete: bash tools/kind/cluster.sh down $CLUSTER)"
  else
    bash "$KIND_CLUSTER_SH" down "$CLUSTER" || status=1
    rm -f "$KUBECONFIG"
  fi
  exit "$status"
}
trap cleanup EXIT

log "building $WORKER_IMAGE and $OPERATOR_IMAGE"
bash "$REPO/tools/images/build.sh" project "$TAG"
log "kind cluster $CLUSTER"
bash "$KIND_CLUSTER_SH" up "$CLUSTER" "$WORKER_IMAGE" "$OPERATOR_IMAGE"
kubectl() { "$BIN/kubectl" --context "$CONTEXT" "$@"; }

log "RabbitMQ in namespace $BROKER_NS"
kubectl create namespace "$BROKER_NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
overlay=$(mktemp -d)
cp -r "$REPO/manifests/rabbitmq-dev" "$overlay/base"
cat >"$overlay/kustomization.yaml" <<YAML
resources: [base]
images: [{name: rabbitmq, newName: ${RABBITMQ_IMAGE%%:*}, newTag: ${RABBITMQ_IMAGE##*:}}]
YAML
kubectl apply -n "$BROKER_NS" -k "$overlay" >/dev/null
rm -rf "$overlay"
kubectl -n "$BROKER_NS" rollout status deployment/rabbitmq --timeout=300s
# Restarted when it drops: kubectl port-forward exits on some stream errors, and the suite runs
# for minutes.
forward_log=$(dirname "$KUBECONFIG")/$CLUSTER.port-forward.log
(
  while true; do
    "$BIN/kubectl" --context "$CONTEXT" -n "$BROKER_NS" port-forward --address 127.0.0.1 \
      service/rabbitmq "$BROKER_PORT:5672" >>"$forward_log" 2>&1 || true
    sleep 1
  done
) &
forward_pid=$!
for _ in $(seq 1 60); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$BROKER_PORT") 2>/dev/null; then break; fi
  sleep 1
done
(exec 3<>"/dev/tcp/127.0.0.1/$BROKER_PORT") 2>/dev/null || die "port-forward to RabbitMQ did not open"

log "running the e2e suite against $CONTEXT"
cd "$REPO"
kubectl config use-context "$CONTEXT" >/dev/null
USE_EXISTING_CLUSTER=true \
ITL_ALLOW_CONTEXT="$CONTEXT" \
ITL_KUBECTL_BIN="$BIN/kubectl" \
ITL_HELM_BIN="$BIN/helm" \
ITL_E2E_WORKLOADS=cluster \
ITL_E2E_IMAGE_TAG="$TAG" \
ITL_TEST_RABBITMQ_URL="amqp://guest:guest@127.0.0.1:$BROKER_PORT/" \
ITL_E2E_POOL_RABBITMQ_URL="amqp://guest:guest@rabbitmq.$BROKER_NS.svc.cluster.local:5672/" \
CI="${CI:-true}" \
  "$PYTHON" -m pytest -p no:cacheprovider -m e2e e2e "$@"
