"""Names, labels, selectors and owner references shared by every child of a WorkerPool.

The autoscaler and the install tests find a pool's objects through these functions, so they
are the one place that decides how children are named and labelled.
"""

from __future__ import annotations

from typing import Any

from workerpool_operator.api import API_VERSION, GROUP, KIND, WorkerPool

FIELD_MANAGER = "workerpool-operator"
"""Server-side apply field manager of everything the operator writes."""

MANAGED_BY = "workerpool-operator"
APP_NAME = "itl-worker"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_POOL = f"{GROUP}/workerpool"

MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
"""Label selector matching every child the operator manages (its Deployment watch uses it)."""

HEALTH_PORT = 8001
"""Port of the worker's /health, /status and /metrics (HEALTH_CHECK_PORT)."""
HEALTH_PORT_NAME = "health"
CONTAINER_NAME = "worker"


def child_name(pool_name: str) -> str:
    """Name of the pool's Deployment, Service and PodDisruptionBudget: the pool's own name.

    Kinds differ, so one name serves all three, and ``kubectl get deploy <pool>`` just works.
    """
    return pool_name


def selector_labels(pool_name: str) -> dict[str, str]:
    """Labels the Deployment selects pods by. Immutable once the Deployment exists."""
    return {LABEL_NAME: APP_NAME, LABEL_POOL: pool_name}


def selector_string(pool_name: str) -> str:
    """The selector as a string, for ``status.selector`` (the scale subresource needs it)."""
    return ",".join(f"{key}={value}" for key, value in sorted(selector_labels(pool_name).items()))


def common_labels(pool_name: str) -> dict[str, str]:
    """Labels on every child and pod: the selector plus the recommended app.kubernetes.io set."""
    return {
        **selector_labels(pool_name),
        LABEL_INSTANCE: pool_name,
        LABEL_COMPONENT: "worker",
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def owner_reference(pool: WorkerPool) -> dict[str, Any]:
    """The controller reference that makes garbage collection delete children with the pool."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": pool.metadata.name,
        "uid": pool.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(pool: WorkerPool) -> dict[str, Any]:
    """Metadata of a child: name, namespace, labels and the owner reference."""
    return {
        "name": child_name(pool.metadata.name),
        "namespace": pool.metadata.namespace,
        "labels": common_labels(pool.metadata.name),
        "ownerReferences": [owner_reference(pool)],
    }
