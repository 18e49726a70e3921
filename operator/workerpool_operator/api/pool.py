"""The WorkerPool resource: metadata, spec and status together, and what follows from them.

Pure module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, Field

from itl_controlplane_sdk.contract.topology import DEFAULT_JOB_QUEUE, provider_binding
from workerpool_operator.api.base import API_VERSION, KIND, Model, rules
from workerpool_operator.api.spec import WorkerPoolSpec
from workerpool_operator.api.status import WorkerPoolStatus, parse_status


class ObjectMeta(Model):
    """The parts of metav1.ObjectMeta the operator reads."""

    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int = 0
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class WorkerPool(Model):
    """A pool of SDK workers the operator runs as a Deployment and (optionally) autoscales."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                "self.metadata.name.size() <= 63",
                "metadata.name must be at most 63 characters (it is a label value)",
            ),
            (
                "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                "metadata.name must be a DNS label starting with a letter "
                "(it names the Deployment and its pods)",
            ),
        )
    )

    api_version: str = API_VERSION
    kind: str = KIND
    metadata: ObjectMeta
    spec: WorkerPoolSpec
    status: WorkerPoolStatus = Field(default_factory=WorkerPoolStatus)


def parse_pool(body: Mapping[str, Any]) -> WorkerPool:
    """A WorkerPool from an API body: metadata and spec strictly, status leniently.

    Raises ``ValidationError`` only for an unusable spec or metadata.
    """
    pool = WorkerPool.model_validate({k: v for k, v in body.items() if k != "status"})
    pool.status = parse_status(body.get("status"))
    return pool


def effective_queue(pool: WorkerPool) -> str:
    """The queue a pool's workers consume (the autoscaler polls the same one)."""
    if pool.spec.queue:
        return pool.spec.queue
    if pool.spec.providers:
        return f"{DEFAULT_JOB_QUEUE}.{pool.metadata.namespace}.{pool.metadata.name}"
    return DEFAULT_JOB_QUEUE


def job_bindings(spec: WorkerPoolSpec) -> tuple[str, ...]:
    """Routing keys the pool's queue is bound with; none for a catch-all queue."""
    return tuple(provider_binding(provider) for provider in spec.providers)


def pool_identity(pool: WorkerPool) -> str:
    """``namespace/name``: what workers report as their pool in heartbeats.

    Pools of the same name in two namespaces may share a broker; the namespace keeps their
    heartbeats (and so their busy/idle view) apart.
    """
    return f"{pool.metadata.namespace}/{pool.metadata.name}"


def target_jobs_per_replica(spec: WorkerPoolSpec) -> int:
    """Jobs one replica should carry: the explicit target, else ``maxConcurrentJobs``."""
    return spec.autoscaling.target_jobs_per_replica or spec.max_concurrent_jobs


def desired_replicas(spec: WorkerPoolSpec) -> int:
    """Replicas the Deployment should run.

    ``replicaCount`` is the one source: ``kubectl scale``, an external HPA and the built-in
    autoscaler all write it through the scale subresource. With autoscaling on it is raised
    to minReplicas at once (adding pods is always safe) but never cut to maxReplicas here:
    lowering is the autoscaler's job, which removes only idle pods (deletion costs first), so
    shrinking maxReplicas never stops a busy worker.
    """
    if not spec.autoscaling.enabled:
        return spec.replica_count
    return max(spec.autoscaling.min_replicas, spec.replica_count)
