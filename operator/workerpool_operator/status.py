"""Compute the operator's part of WorkerPool status from what it observed.

The operator owns ``observedGeneration``, ``replicas``, ``readyReplicas``,
``desiredReplicas``, ``selector`` and the Ready/Progressing/Degraded conditions; the
autoscaler owns ``queue``, ``lastScaleTime``, ``decisions`` and ScalingActive. Each side
writes only its fields (server-side apply with its own field manager; conditions are a map
keyed by type), so neither overwrites the other.

Pure module: the Deployment comes in as a dict, ``now`` as a parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workerpool_operator import conditions, diff, labels
from workerpool_operator.api import WorkerPool, desired_replicas
from workerpool_operator.conditions import DEGRADED, PROGRESSING, READY, Desired


@dataclass(frozen=True)
class Failure:
    """Why a reconcile could not converge; becomes the Degraded reason."""

    reason: str
    message: str
    permanent: bool = False
    """True when retrying cannot help until the spec changes (no backoff retries)."""


SECRET_NOT_FOUND = "SecretNotFound"
SECRET_KEY_NOT_FOUND = "SecretKeyNotFound"
INVALID_SPEC = "InvalidSpec"
APPLY_FAILED = "ApplyFailed"
API_UNAVAILABLE = "APIUnavailable"

RECONCILE_FAILURES = frozenset(
    {SECRET_NOT_FOUND, SECRET_KEY_NOT_FOUND, INVALID_SPEC, APPLY_FAILED, API_UNAVAILABLE}
)
"""Degraded reasons only a successful reconcile clears (Deployment events keep them)."""


@dataclass(frozen=True)
class Rollout:
    """The rollout state of the pool's Deployment, read like ``kubectl rollout status``."""

    replicas: int
    ready: int
    updated: int
    available: int
    complete: bool
    deadline_exceeded: bool
    replica_failure: str | None


def _count(status: Mapping[str, Any], key: str) -> int:
    value = status.get(key)
    return int(value) if isinstance(value, int) else 0


def read_rollout(deployment: Mapping[str, Any], desired: int) -> Rollout:
    """Summarise a Deployment's status against the replica count the operator asked for."""
    status: Mapping[str, Any] = deployment.get("status") or {}
    generation = deployment.get("metadata", {}).get("generation", 0)
    replicas = _count(status, "replicas")
    updated = _count(status, "updatedReplicas")
    available = _count(status, "availableReplicas")
    observed = _count(status, "observedGeneration") >= generation
    complete = observed and updated == desired and replicas == updated and available >= updated
    deadline_exceeded = False
    replica_failure = None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and (
            condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            deadline_exceeded = True
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            replica_failure = str(condition.get("message") or condition.get("reason") or "")
    return Rollout(
        replicas=replicas,
        ready=_count(status, "readyReplicas"),
        updated=updated,
        available=available,
        complete=complete,
        deadline_exceeded=deadline_exceeded,
        replica_failure=replica_failure,
    )


def carried_failure(pool: WorkerPool) -> Failure | None:
    """A reconcile failure already recorded for the current generation, if any.

    Deployment events recompute status without re-running the reconcile; they must not
    clear a Degraded condition only a reconcile can clear.
    """
    degraded = conditions.find(pool.status.conditions, DEGRADED)
    if (
        degraded is not None
        and degraded.status == "True"
        and degraded.reason in RECONCILE_FAILURES
        and degraded.observed_generation == pool.metadata.generation
    ):
        return Failure(reason=degraded.reason, message=degraded.message)
    return None


def desired_conditions(
    desired: int, rollout: Rollout | None, failure: Failure | None
) -> list[Desired]:
    """Ready, Progressing and Degraded for one observation."""
    if rollout is None:
        reason = failure.reason if failure else "DeploymentMissing"
        message = failure.message if failure else "the worker Deployment does not exist yet"
        return [
            Desired(READY, "False", reason, message),
            Desired(PROGRESSING, "False" if failure else "True", reason, message),
            Desired(DEGRADED, "True", reason, message)
            if failure
            else Desired(DEGRADED, "False", "AsExpected"),
        ]

    if rollout.complete and rollout.ready >= desired:
        ready = Desired(
            READY,
            "True",
            "ScaledToZero" if desired == 0 else "AllReplicasReady",
            f"{rollout.ready}/{desired} replicas ready",
        )
    else:
        ready = Desired(READY, "False", "ReplicasNotReady", f"{rollout.ready}/{desired} ready")

    if failure is not None:
        progressing = Desired(PROGRESSING, "False", failure.reason, failure.message)
    elif rollout.deadline_exceeded:
        progressing = Desired(
            PROGRESSING, "False", "ProgressDeadlineExceeded", "the rollout stopped progressing"
        )
    elif rollout.complete:
        progressing = Desired(PROGRESSING, "False", "RolloutComplete", "all replicas updated")
    else:
        progressing = Desired(
            PROGRESSING,
            "True",
            "RollingOut",
            f"{rollout.updated}/{desired} updated, {rollout.available} available",
        )

    if failure is not None:
        degraded = Desired(DEGRADED, "True", failure.reason, failure.message)
    elif rollout.replica_failure is not None:
        degraded = Desired(DEGRADED, "True", "ReplicaFailure", rollout.replica_failure)
    elif rollout.deadline_exceeded:
        degraded = Desired(
            DEGRADED, "True", "ProgressDeadlineExceeded", "the rollout stopped progressing"
        )
    else:
        degraded = Desired(DEGRADED, "False", "AsExpected")
    return [ready, progressing, degraded]


def operator_status(
    pool: WorkerPool,
    deployment: Mapping[str, Any] | None,
    failure: Failure | None,
    *,
    now: datetime,
) -> dict[str, Any]:
    """The operator-owned status fields, camelCase, ready for a status apply."""
    desired = desired_replicas(pool.spec)
    rollout = read_rollout(deployment, desired) if deployment is not None else None
    generation = pool.metadata.generation
    settled = [
        conditions.settle(pool.status.conditions, want, observed_generation=generation, now=now)
        for want in desired_conditions(desired, rollout, failure)
    ]
    return {
        "observedGeneration": generation,
        "replicas": rollout.replicas if rollout else 0,
        "readyReplicas": rollout.ready if rollout else 0,
        "desiredReplicas": desired,
        "selector": labels.selector_string(pool.metadata.name),
        "conditions": [c.model_dump(mode="json") for c in settled],
    }


def status_is_current(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """True when ``current`` status already shows every operator-owned field of ``wanted``.

    Conditions are matched by type, so conditions other writers own (ScalingActive) do not
    make an up-to-date status look stale.
    """
    for key, value in wanted.items():
        if key == "conditions":
            have = {c.get("type"): c for c in current.get("conditions") or []}
            if not all(diff.contains(have.get(c["type"]), c) for c in value):
                return False
        elif current.get(key) != value:
            return False
    return True
