#!/usr/bin/env bash
# The e2e suite on kind: real pods, real images. Needs a Docker engine, kind, kubectl, helm
# and the project's Python environment (make python-deps; source .venv/bin/activate).
#
#   e2e/kind.sh                 create the cluster, build and load the images, run, tear down
#   KEEP_CLUSTER=1 e2e/kind.sh  keep the cluster afterwards (delete: kind delete cluster --name itl-e2e)
#
# It runs the same tests as on the local control plane (pytest e2e), switched to in-cluster
# workloads by the variables e2e/conftest.py documents: the chart's Deployment is the
# operator, the pool's pods are the workers, and RabbitMQ runs in the cluster
# (manifests/rabbitmq-dev), reached by the tests through a port-forward.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER=${KIND_CLUSTER_NAME:-itl-e2e}
CONTEXT=kind-$CLUSTER
TAG=${ITL_E2E_IMAGE_TAG:-e2e}
KIND_IMAGE=${KIND_NODE_IMAGE:-}            # e.g. kindest/node:v1.33.1; empty: kind's default
BROKER_NS=itl-e2e-broker
BROKER_PORT=${ITL_E2E_BROKER_PORT:-35672}  # local end of the port-forward
PYTHON=${PYTHON:-python}
OPERATOR_IMAGE=itl-controlplane-operator:$TAG
WORKER_IMAGE=itl-controlplane-worker:$TAG

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'kind.sh: %s\n' "$*" >&2; exit 1; }

for tool in docker kind kubectl helm "$PYTHON"; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not on PATH"
done
docker info >/dev/null 2>&1 || die "no Docker engine is reachable (docker info failed)"

created=0
forward_pid=
cleanup() {
  local status=$?
  [ -n "$forward_pid" ] && kill "$forward_pid" 2>/dev/null || true
  if [ "$created" = 1 ] && [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    log "deleting kind cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" || true
  elif [ "$created" = 1 ]; then
    log "kept cluster $CLUSTER (kind delete cluster --name $CLUSTER)"
  fi
  exit "$status"
}
trap cleanup EXIT

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "reusing kind cluster $CLUSTER"
else
  log "creating kind cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --wait 180s ${KIND_IMAGE:+--image "$KIND_IMAGE"}
  created=1
fi
kubectl config use-context "$CONTEXT" >/dev/null

log "building $WORKER_IMAGE and $OPERATOR_IMAGE"
docker build --target worker --tag "$WORKER_IMAGE" "$REPO"
docker build --target operator --tag "$OPERATOR_IMAGE" "$REPO"
kind load docker-image --name "$CLUSTER" "$WORKER_IMAGE" "$OPERATOR_IMAGE"

log "RabbitMQ in namespace $BROKER_NS"
kubectl create namespace "$BROKER_NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -n "$BROKER_NS" -k "$REPO/manifests/rabbitmq-dev"
kubectl -n "$BROKER_NS" rollout status deployment/rabbitmq --timeout=300s
kubectl -n "$BROKER_NS" port-forward service/rabbitmq "$BROKER_PORT:5672" >/dev/null 2>&1 &
forward_pid=$!
for _ in $(seq 1 60); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$BROKER_PORT") 2>/dev/null; then break; fi
  sleep 1
done
(exec 3<>"/dev/tcp/127.0.0.1/$BROKER_PORT") 2>/dev/null || die "port-forward to RabbitMQ did not open"

log "running the e2e suite against $CONTEXT"
cd "$REPO"
USE_EXISTING_CLUSTER=true \
ITL_ALLOW_CONTEXT="$CONTEXT" \
ITL_KUBECTL_BIN="$(command -v kubectl)" \
ITL_HELM_BIN="$(command -v helm)" \
ITL_E2E_WORKLOADS=cluster \
ITL_E2E_IMAGE_TAG="$TAG" \
ITL_TEST_RABBITMQ_URL="amqp://guest:guest@127.0.0.1:$BROKER_PORT/" \
ITL_E2E_POOL_RABBITMQ_URL="amqp://guest:guest@rabbitmq.$BROKER_NS.svc.cluster.local:5672/" \
CI="${CI:-true}" \
  "$PYTHON" -m pytest -p no:cacheprovider -m e2e e2e "$@"
