"""The autoscaler's Kopf layer: a pod index, the pool watch, one poll task per pool.

Loaded next to ``workerpool_operator.handlers``, either imported from there or with
``kopf run -m workerpool_operator.handlers -m workerpool_operator.autoscaler.handlers``.

Why not a ``@kopf.daemon``: Kopf puts a finalizer on every object a daemon or timer
serves, and the operator deliberately has none, so pools can be deleted while it is down.
Instead, the pool watch (``track_autoscaled_pool``) starts and stops plain asyncio tasks
(``Supervisor``). Each task polls its pool every ``pollIntervalSeconds`` and always reads
the latest body the watch delivered.

Why a Kopf index for pods: Kopf starts handlers only after every index has been
populated. So the first poll after a restart already sees every pod of the pool, and a
pod the autoscaler has not seen can never be mistaken for a replica with no pod (which
would be "safe to remove").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from workerpool_operator import api, conditions, scaling
from workerpool_operator.autoscaler import observe, report
from workerpool_operator.autoscaler.broker import BrokerHub
from workerpool_operator.autoscaler.cluster import AutoscalerKube
from workerpool_operator.autoscaler.metrics import AutoscalerMetrics
from workerpool_operator.autoscaler.scaler import EventPoster, PoolScaler
from workerpool_operator.builders.meta import LABEL_POOL, MANAGED_SELECTOR

logger = logging.getLogger(__name__)

PoolKey = tuple[str, str]
PodIndex = Mapping[PoolKey, Any]
"""``kopf.Index`` of pods by (namespace, pool): each value is a store of ``PodView``."""


def post_event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Record an Event on the pool through Kopf's poster (batched and retried by Kopf)."""
    try:
        kopf.event(dict(body), type=type_, reason=reason, message=message)  # type: ignore[arg-type]
    except LookupError:  # outside an operator context (tests driving the supervisor)
        logger.info("event %s %s: %s", type_, reason, message)


def autoscaling_enabled(body: Mapping[str, Any]) -> bool:
    spec = body.get("spec") or {}
    return bool((spec.get("autoscaling") or {}).get("enabled"))


def poll_interval(body: Mapping[str, Any]) -> float:
    spec = body.get("spec") or {}
    value = (spec.get("autoscaling") or {}).get("pollIntervalSeconds", 5)
    return float(value) if isinstance(value, int | float) and value > 0 else 5.0


class Supervisor:
    """One polling task per autoscaled pool, started and stopped by the pool watch."""

    def __init__(
        self,
        *,
        cluster: Any,
        broker: BrokerHub,
        metrics: AutoscalerMetrics,
        post: EventPoster = post_event,
    ) -> None:
        self.cluster = cluster
        self.broker = broker
        self.metrics = metrics
        self._post = post
        self._bodies: dict[PoolKey, dict[str, Any]] = {}
        self._tasks: dict[PoolKey, asyncio.Task[None]] = {}
        self._pods: PodIndex = {}
        self._chores: set[asyncio.Task[None]] = set()

    @property
    def pools(self) -> list[PoolKey]:
        """Pools being autoscaled right now."""
        return sorted(self._tasks)

    def track(self, event_type: str | None, body: Mapping[str, Any], pods: PodIndex) -> None:
        """Follow one pool event: keep its latest body; start or stop its task."""
        self._pods = pods
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        gone = event_type == "DELETED" or meta.get("deletionTimestamp") is not None
        if gone or not autoscaling_enabled(body):
            self._bodies.pop(key, None)
            was_running = key in self._tasks
            self._stop(key)
            if was_running and not gone:
                self._background(self._mark_disabled(key, body))
            return
        self._bodies[key] = dict(body)
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._run(key), name=f"autoscale {key}")

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _mark_disabled(self, key: PoolKey, body: Mapping[str, Any]) -> None:
        """Autoscaling was turned off: say so, and drop the autoscaler's other fields.

        Applying only the condition releases ``queue``, ``decisions`` and
        ``lastScaleTime`` (server-side apply removes fields a manager stops sending), so
        ``kubectl get wp`` no longer shows numbers nobody refreshes.
        """
        try:
            pool = api.WorkerPool.model_validate(dict(body))
            condition = conditions.settle(
                pool.status.conditions,
                report.disabled_condition(),
                observed_generation=pool.metadata.generation,
                now=datetime.now(UTC),
            )
            await self.cluster.apply_status(
                *key, {"conditions": [condition.model_dump(mode="json")]}
            )
        except Exception as exc:
            logger.warning("could not mark %s/%s as not autoscaled: %s", *key, exc)

    def _stop(self, key: PoolKey) -> None:
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()
        self.metrics.forget(*key)

    def pods_of(self, key: PoolKey) -> list[scaling.PodView]:
        store = self._pods.get(key)
        return list(store) if store is not None else []

    async def _run(self, key: PoolKey) -> None:
        """Poll until the pool is gone or autoscaling is turned off (then cancelled)."""
        scaler = PoolScaler(
            *key,
            cluster=self.cluster,
            broker=self.broker,
            metrics=self.metrics,
            post_event=self._post,
        )
        while True:
            body = self._bodies.get(key)
            if body is None:
                return
            started = time.monotonic()
            try:
                await scaler.poll(body, self.pods_of(key))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("autoscaling poll of %s/%s failed", *key)
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, poll_interval(body) - elapsed))

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.broker.close()


def _supervisor(memo: Any) -> Supervisor:
    supervisor: Supervisor = memo.autoscaler
    return supervisor


@kopf.on.startup()
async def start_autoscaler(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Build the supervisor; watch only the operator's own pods (server-side filter)."""
    settings.watching.label_selectors["v1", "pods"] = MANAGED_SELECTOR
    if memo.get("autoscaler") is not None:  # injected by tests or an embedding program
        return
    memo.autoscaler = Supervisor(
        cluster=await AutoscalerKube.connect_autoscaler(),
        broker=BrokerHub(),
        metrics=AutoscalerMetrics(),
    )


@kopf.on.cleanup()
async def stop_autoscaler(memo: kopf.Memo, **_: Any) -> None:
    supervisor: Supervisor | None = memo.get("autoscaler")
    if supervisor is not None:
        await supervisor.close()
        with contextlib.suppress(AttributeError):
            await supervisor.cluster.close()


@kopf.index("v1", "pods", labels={LABEL_POOL: kopf.PRESENT})
def autoscaler_pods(
    namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> dict[PoolKey, scaling.PodView]:
    """Pods by (namespace, pool), reduced to what scale-down safety needs."""
    return {(str(namespace), labels[LABEL_POOL]): observe.pod_view(body)}


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL)
async def track_autoscaled_pool(
    type: str | None, body: kopf.Body, memo: kopf.Memo, **kwargs: Any
) -> None:
    """Start, update or stop the pool's poller.

    Async on purpose: Kopf runs sync handlers in a thread, where no event loop exists to
    start the poll task on. The pod index arrives as the ``autoscaler_pods`` keyword
    (Kopf passes every index by its function's name); it is read from ``kwargs`` to keep
    the handler's signature the one Kopf declares.
    """
    pods: kopf.Index[PoolKey, scaling.PodView] = kwargs["autoscaler_pods"]
    _supervisor(memo).track(type, body, pods)
