"""Bring one WorkerPool's children and status in line with its spec (level-based).

Called by every trigger alike (create, update, resume, a changed or deleted Deployment, the
periodic resync): read the pool, check its Secret, build the children, apply only those whose
live version lacks what we want, then write the operator's part of status. Running it twice
changes nothing the second time, which is what makes restarts and duplicate events harmless.

Orchestration only: decisions live in ``builders``, ``status`` and ``diff`` (pure), I/O in
``kube``. No kopf here; ``handlers`` turns an ``Outcome`` into events and retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from workerpool_operator import conditions, diff
from workerpool_operator.api import Condition, WorkerPool, parse_pool, parse_status
from workerpool_operator.builders import build_children, build_deployment
from workerpool_operator.conditions import DEGRADED
from workerpool_operator.kube import KubeAPI, KubeError, Unavailable
from workerpool_operator.status import (
    API_UNAVAILABLE,
    APPLY_FAILED,
    INVALID_SPEC,
    RECONCILE_FAILURES,
    SECRET_KEY_NOT_FOUND,
    SECRET_NOT_FOUND,
    Failure,
    carried_failure,
    operator_status,
    status_is_current,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What one reconcile did, for events, metrics and retries."""

    created: tuple[str, ...] = ()
    """Kinds of the children created (e.g. ``("PodDisruptionBudget", "Deployment")``)."""
    updated: tuple[str, ...] = ()
    """Kinds of the children whose live object lacked what the spec says."""
    failure: Failure | None = None
    previous_degraded: Condition | None = None
    status: dict[str, Any] = field(default_factory=dict)
    written: dict[str, Any] | None = None
    """The pool as returned by the status write (None when status was already current)."""
    scaled: tuple[int, int] | None = None
    """(from, to) when the Deployment change was only its replica count."""

    @property
    def failure_is_new(self) -> bool:
        """The failure started, or its reason changed, in this reconcile (one event each)."""
        if self.failure is None:
            return False
        previous = self.previous_degraded
        return not (
            previous is not None
            and previous.status == "True"
            and previous.reason == self.failure.reason
        )

    @property
    def recovered(self) -> bool:
        """A reconcile failure recorded earlier has cleared."""
        previous = self.previous_degraded
        return (
            self.failure is None
            and previous is not None
            and previous.status == "True"
            and previous.reason in RECONCILE_FAILURES
        )


async def _check_secret(pool: WorkerPool, kube: KubeAPI) -> Failure | None:
    """The referenced broker Secret must exist and hold its key before pods can start."""
    ref = pool.spec.rabbitmq.secret_ref
    keys = await kube.secret_keys(pool.metadata.namespace, ref.name)
    if keys is None:
        return Failure(
            SECRET_NOT_FOUND,
            f"Secret {ref.name!r} (spec.rabbitmq.secretRef.name) not found in namespace "
            f"{pool.metadata.namespace!r}",
        )
    if ref.key not in keys:
        return Failure(
            SECRET_KEY_NOT_FOUND,
            f"Secret {ref.name!r} has no key {ref.key!r} (spec.rabbitmq.secretRef.key)",
        )
    return None


def _kube_failure(exc: KubeError, what: str) -> Failure:
    if isinstance(exc, Unavailable):
        return Failure(API_UNAVAILABLE, f"{what}: {exc.message}")
    return Failure(APPLY_FAILED, f"{what}: {exc.status} {exc.reason}: {exc.message}")


def _replicas_only(live: Mapping[str, Any], child: Mapping[str, Any]) -> tuple[int, int] | None:
    """(from, to) when a Deployment differs from what we want only in spec.replicas."""
    if child["kind"] != "Deployment":
        return None
    spec = {k: v for k, v in child["spec"].items() if k != "replicas"}
    if not diff.contains(live, {**child, "spec": spec}):
        return None
    return int(live.get("spec", {}).get("replicas") or 0), int(child["spec"]["replicas"])


def _label(obj: Mapping[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


@dataclass(frozen=True)
class _Applied:
    """What converging one child did."""

    live: dict[str, Any] | None = None
    created: bool = False
    updated: bool = False
    scaled: tuple[int, int] | None = None
    failure: Failure | None = None


async def _converge(kube: KubeAPI, child: dict[str, Any], *, fresh: bool) -> _Applied:
    """Apply one child unless its live version already has what we want."""
    try:
        live = None if fresh else await kube.get_like(child)
        if live is None:
            return _Applied(await kube.apply(child), created=True)
        if diff.contains(live, child):
            return _Applied(live)
        before = live["metadata"].get("resourceVersion")
        replicas_only = _replicas_only(live, child)
        live = await kube.apply(child)
        if live["metadata"].get("resourceVersion") == before:
            return _Applied(live)
        return _Applied(live, updated=True, scaled=replicas_only)
    except KubeError as exc:
        return _Applied(failure=_kube_failure(exc, f"applying {_label(child)}"))


async def _write_status(
    kube: KubeAPI, pool: WorkerPool, current: Mapping[str, Any], status: dict[str, Any]
) -> dict[str, Any] | None:
    """Apply the operator's status fields unless the pool already shows exactly them.

    Returns the pool as the API server answered (the freshest body there is), or None when
    nothing was written.
    """
    if status_is_current(current, status):
        return None
    return await kube.apply_status(pool.metadata.namespace, pool.metadata.name, status)


def _invalid_spec_status(
    body: Mapping[str, Any], exc: ValidationError, now: datetime
) -> tuple[dict[str, Any], Failure, Condition | None]:
    """Status for a pool whose spec the models reject (it slipped past the schema)."""
    failure = Failure(INVALID_SPEC, str(exc).replace("\n", " ")[:1000], permanent=True)
    existing = parse_status(body.get("status")).conditions
    generation = int(body.get("metadata", {}).get("generation") or 0)
    wanted = [
        conditions.Desired(conditions.READY, "False", failure.reason, failure.message),
        conditions.Desired(conditions.PROGRESSING, "False", failure.reason, failure.message),
        conditions.Desired(DEGRADED, "True", failure.reason, failure.message),
    ]
    settled = conditions.set_conditions(
        [c for c in existing if c.type in conditions.OPERATOR_CONDITIONS],
        wanted,
        observed_generation=generation,
        now=now,
    )
    status = {
        "observedGeneration": generation,
        "conditions": [c.model_dump(mode="json") for c in settled],
    }
    return status, failure, conditions.find(existing, DEGRADED)


async def reconcile(
    body: Mapping[str, Any],
    *,
    kube: KubeAPI,
    default_image: str,
    now: datetime | None = None,  # None for the wall clock; tests pass a fixed time
) -> Outcome:
    """Reconcile one pool; never raises for expected failures (they are in the Outcome)."""
    now = now or datetime.now(UTC)
    current_status = body.get("status") or {}
    try:
        pool = parse_pool(body)
    except ValidationError as exc:
        status, invalid, previous = _invalid_spec_status(body, exc, now)
        meta = body["metadata"]
        written: dict[str, Any] | None = await kube.apply_status(
            meta["namespace"], meta["name"], status
        )
        return Outcome(failure=invalid, previous_degraded=previous, status=status, written=written)

    previous = conditions.find(pool.status.conditions, DEGRADED)
    created: list[str] = []
    updated: list[str] = []
    deployment: dict[str, Any] | None = None
    failure: Failure | None = None
    scaled: tuple[int, int] | None = None
    try:
        failure = await _check_secret(pool, kube)
    except KubeError as exc:
        failure = _kube_failure(exc, "reading the broker Secret")

    # A pool the operator has never reported on has no children yet: apply them straight
    # away instead of asking first (halves the requests when many pools arrive at once).
    # The children are independent, so they converge at once: a reconcile waits for one
    # round trip to the API server instead of one per child, which is what bounds how
    # fast a burst of new pools gets its Deployments (max_concurrent_reconciles at a time).
    fresh = pool.status.observed_generation is None
    if failure is None:
        children = build_children(pool, default_image=default_image)
        results = await asyncio.gather(*(_converge(kube, c, fresh=fresh) for c in children))
        for child, result in zip(children, results, strict=True):
            if result.failure is not None:
                failure = failure or result.failure
                continue
            if result.created:
                created.append(child["kind"])
            if result.updated:
                updated.append(child["kind"])
                scaled = result.scaled
            if child["kind"] == "Deployment":
                deployment = result.live

    if failure is not None and deployment is None:
        try:
            deployment = await kube.get(
                "apps/v1", "Deployment", pool.metadata.namespace, pool.metadata.name
            )
        except KubeError:
            deployment = None

    status = operator_status(pool, deployment, failure, now=now)
    written = await _write_status(kube, pool, current_status, status)
    return Outcome(
        created=tuple(created),
        updated=tuple(updated),
        failure=failure,
        previous_degraded=previous,
        status=status,
        written=written,
        scaled=scaled,
    )


def drift(
    pool_body: Mapping[str, Any], deployment: Mapping[str, Any] | None, *, default_image: str
) -> str | None:
    """The drifted field a Deployment event shows ("deleted" when it is gone), or None."""
    if deployment is None:
        return "deleted"
    try:
        pool = parse_pool(pool_body)
    except ValidationError:
        return None
    return diff.first_difference(deployment, build_deployment(pool, default_image=default_image))


def needs_reconcile(
    pool_body: Mapping[str, Any], deployment: Mapping[str, Any] | None, *, default_image: str
) -> bool:
    """Whether a Deployment event shows drift (deleted, or a field we own was changed)."""
    return drift(pool_body, deployment, default_image=default_image) is not None


KnownFailure = tuple[int, Failure | None]
"""(generation, failure) of the last reconcile this process ran for a pool."""


async def refresh_status(
    pool_body: Mapping[str, Any],
    deployment: Mapping[str, Any],
    *,
    kube: KubeAPI,
    known: KnownFailure | None = None,
    now: datetime | None = None,
) -> dict[str, Any] | None:
    """Recompute status from a Deployment event without touching the children.

    A reconcile failure for the current generation stays: only a reconcile clears it. The
    process's own memory of its last reconcile (``known``) is trusted over the status read
    back, which may predate the last write; after a restart the status is all there is.
    Returns the pool as written, or None when nothing was written.
    """
    try:
        pool = parse_pool(pool_body)
    except ValidationError:
        return None
    if known is not None and known[0] == pool.metadata.generation:
        failure = known[1]
    else:
        failure = carried_failure(pool)
    status = operator_status(pool, deployment, failure, now=now or datetime.now(UTC))
    return await _write_status(kube, pool, pool_body.get("status") or {}, status)
