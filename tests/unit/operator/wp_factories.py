"""Small builders of WorkerPool bodies and Deployment states for the operator unit tests."""

from __future__ import annotations

import copy
from typing import Any

from workerpool_operator.api import API_VERSION, KIND, WorkerPool

UID = "0b6f3c1e-6a55-4d43-9f3e-2a8f4c1d7e01"


def pool_body(
    name: str = "workers",
    namespace: str = "team-a",
    generation: int = 1,
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A WorkerPool as the API server returns it (camelCase), with a minimal valid spec."""
    full_spec: dict[str, Any] = {"rabbitmq": {"secretRef": {"name": "rabbitmq"}}}
    full_spec.update(spec)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": UID,
            "generation": generation,
            "resourceVersion": "1",
        },
        "spec": full_spec,
        "status": copy.deepcopy(status or {}),
    }


def pool(**kwargs: Any) -> WorkerPool:
    return WorkerPool.model_validate(pool_body(**kwargs))


def deployment_state(
    *,
    desired: int,
    ready: int | None = None,
    updated: int | None = None,
    replicas: int | None = None,
    generation: int = 1,
    observed: int | None = None,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Deployment with only the fields status computation reads."""
    ready = desired if ready is None else ready
    updated = desired if updated is None else updated
    replicas = updated if replicas is None else replicas
    return {
        "metadata": {"generation": generation, "resourceVersion": "7"},
        "spec": {"replicas": desired},
        "status": {
            "observedGeneration": generation if observed is None else observed,
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": conditions or [],
        },
    }
