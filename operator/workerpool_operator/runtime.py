"""Operator-wide state and the loops around ``reconcile``: one object in the Kopf memo.

Holds the settings, the Kubernetes adapter, the metrics, the pool cache it shares with the
autoscaler (fed by the one pool watch), and a lock per pool so a create handler, a Deployment
event and the resync never reconcile the same pool at once. Events are posted through an
injected function, so this module needs no kopf and tests can collect events in a list.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workerpool_operator import reconcile as reconciling
from workerpool_operator.kube import KubeAPI
from workerpool_operator.labels import LABEL_POOL
from workerpool_operator.metrics import OperatorMetrics
from workerpool_operator.pools import EventPoster, PoolCache, PoolKey, pool_key
from workerpool_operator.reconcile import Outcome
from workerpool_operator.settings import OperatorSettings

logger = logging.getLogger(__name__)

TRIGGER_SPEC = "spec"
TRIGGER_DRIFT = "drift"
TRIGGER_RESYNC = "resync"


def _kinds(kinds: tuple[str, ...]) -> str:
    return ", ".join(kinds)


@dataclass
class Runtime:
    """Everything the handlers share; created in the startup handler, closed at cleanup."""

    settings: OperatorSettings
    kube: KubeAPI
    metrics: OperatorMetrics
    post_event: EventPoster
    pools: PoolCache = field(default_factory=PoolCache)
    failures: dict[PoolKey, reconciling.KnownFailure] = field(default_factory=dict)
    _locks: dict[PoolKey, asyncio.Lock] = field(default_factory=dict)
    _slots: asyncio.Semaphore | None = None

    # -- pool tracking ---------------------------------------------------------------------

    def track(self, event_type: str | None, body: Mapping[str, Any]) -> PoolKey:
        """Feed one WorkerPool watch event into the shared cache; forget a deleted pool."""
        key = self.pools.observe(event_type, body)
        if event_type == "DELETED":
            self.failures.pop(key, None)
            self._locks.pop(key, None)
        self.metrics.pools.set(len(self.pools))
        return key

    def _lock(self, key: PoolKey) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    # -- reconcile -------------------------------------------------------------------------

    async def reconcile(
        self,
        body: Mapping[str, Any],
        *,
        trigger: str = TRIGGER_SPEC,
        detail: str | None = None,  # what drifted, for the DriftRepaired event
    ) -> Outcome:
        """Reconcile one pool under its lock, then record metrics and post events."""
        started = time.perf_counter()
        key = pool_key(body)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.settings.max_concurrent_reconciles)
        async with self._lock(key), self._slots:
            body = self._newest(key, body)
            outcome = await reconciling.reconcile(
                body, kube=self.kube, default_image=self.settings.default_worker_image
            )
            generation = int(body["metadata"].get("generation") or 0)
            self.failures[key] = (generation, outcome.failure)
            self.pools.remember(outcome.written)
        elapsed = time.perf_counter() - started
        self.metrics.duration.observe(elapsed)
        logger.log(
            logging.INFO
            if outcome.created or outcome.updated or outcome.failure
            else logging.DEBUG,
            "reconciled %s/%s (%s) in %.3fs: created=%s updated=%s failure=%s",
            *pool_key(body),
            trigger,
            elapsed,
            list(outcome.created),
            list(outcome.updated),
            outcome.failure.reason if outcome.failure else None,
        )
        self._record(body, outcome, trigger, detail)
        return outcome

    def _newest(self, key: PoolKey, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """The cache's body of the pool when it is newer than ``body``.

        A reconcile may wait for the pool's lock while a newer version is reconciled; applying
        its older body afterwards would put the Deployment back to the older replicas (seen
        under load: the autoscaler's 1 -> 0 undone by a queued reconcile, then redone).
        """
        cached = self.pools.get(key)
        if cached is None or cached.body["metadata"].get("uid") != body["metadata"].get("uid"):
            return body
        mine = str(body["metadata"].get("resourceVersion", ""))
        theirs = str(cached.body["metadata"].get("resourceVersion", ""))
        if mine.isdigit() and theirs.isdigit() and int(theirs) > int(mine):
            return cached.body
        return body

    def _record(
        self, body: Mapping[str, Any], outcome: Outcome, trigger: str, detail: str | None
    ) -> None:
        metrics = self.metrics
        metrics.reconciles.labels("failure" if outcome.failure else "success").inc()
        for kind in outcome.created:
            metrics.applies.labels(kind, "created").inc()
        for kind in outcome.updated:
            metrics.applies.labels(kind, "updated").inc()
        name = body["metadata"]["name"]
        changed = outcome.created + outcome.updated
        if trigger != TRIGGER_SPEC and changed:
            for kind in changed:
                metrics.drift_repairs.labels(kind).inc()
            what = f" ({detail})" if detail else ""
            self.post_event(
                body,
                "Normal",
                "DriftRepaired",
                f"Restored {_kinds(changed)} {name!r} changed outside the operator{what}",
            )
        else:
            if outcome.created:
                self.post_event(
                    body, "Normal", "Created", f"Created {_kinds(outcome.created)} {name!r}"
                )
            if outcome.updated and outcome.scaled and outcome.updated == ("Deployment",):
                # The autoscaler reports its own scale events; kubectl scale / an HPA do not.
                autoscaled = ((body.get("spec") or {}).get("autoscaling") or {}).get("enabled")
                if not autoscaled:
                    before, after = outcome.scaled
                    self.post_event(
                        body, "Normal", "Scaled", f"Scaled {name!r} from {before} to {after}"
                    )
            elif outcome.updated:
                self.post_event(
                    body, "Normal", "Updated", f"Updated {_kinds(outcome.updated)} {name!r}"
                )
        if outcome.failure is not None:
            metrics.errors.labels(outcome.failure.reason).inc()
            if outcome.failure_is_new:
                self.post_event(body, "Warning", outcome.failure.reason, outcome.failure.message)
        elif outcome.recovered:
            self.post_event(body, "Normal", "Recovered", "The pool reconciles again")

    # -- Deployment events -----------------------------------------------------------------

    async def on_deployment(self, event_type: str | None, deployment: Mapping[str, Any]) -> None:
        """A managed Deployment changed: repair drift, else refresh the pool's status."""
        meta = deployment.get("metadata") or {}
        pool_name = (meta.get("labels") or {}).get(LABEL_POOL)
        if not pool_name:
            return
        cached = self.pools.get((str(meta.get("namespace")), pool_name))
        if cached is None or cached.deleting:
            return  # the pool is gone or going: garbage collection removes the children
        body = cached.body
        live = None if event_type == "DELETED" else deployment
        drifted = reconciling.drift(body, live, default_image=self.settings.default_worker_image)
        if drifted is not None:
            logger.info("Deployment %s/%s drifted at %s", meta.get("namespace"), pool_name, drifted)
            detail = "deleted" if drifted == "deleted" else f"{drifted} was changed"
            await self.reconcile(body, trigger=TRIGGER_DRIFT, detail=detail)
            return
        key = pool_key(body)
        async with self._lock(key):
            refreshed = self.pools.get(key)  # may have been refreshed while waiting
            body = refreshed.body if refreshed is not None else body
            written = await reconciling.refresh_status(
                body, deployment, kube=self.kube, known=self.failures.get(key)
            )
            self.pools.remember(written)

    # -- periodic resync -------------------------------------------------------------------

    async def resync_forever(self) -> None:
        """Reconcile every known pool every ``resync_seconds``, spread over the period.

        A safety net for missed watch events (and the only repair path for a PDB edited by
        hand, whose kind the operator does not watch). Not a Kopf timer: timers put
        a finalizer on every pool, which would block deleting pools while the operator is down.
        """
        period = self.settings.resync_seconds
        if period <= 0:
            return
        while True:
            keys = list(self.pools)
            pause = period / max(len(keys), 1)
            if not keys:
                await asyncio.sleep(period)
            for key in keys:
                await asyncio.sleep(pause)
                cached = self.pools.get(key)
                if cached is None:
                    continue
                try:
                    await self.reconcile(cached.body, trigger=TRIGGER_RESYNC)
                except Exception:
                    logger.exception("resync of WorkerPool %s/%s failed", *key)
