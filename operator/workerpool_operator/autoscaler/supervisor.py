"""One polling task per autoscaled pool, started and stopped as the pool watch reports.

Why not a ``@kopf.daemon``: Kopf puts a finalizer on every object a daemon or timer serves,
and the operator deliberately has none, so pools can be deleted while it is down. Instead,
the one WorkerPool watch (``handlers.track_pool``) updates the shared ``PoolCache`` and calls
``Supervisor.track``, which starts or stops plain asyncio tasks. Each task polls its pool
every ``spec.autoscaling.pollIntervalSeconds`` and always takes the pool's latest body from
the cache, parsed there once per version of the body. A pool at zero replicas also polls as
soon as a job reaches it (its arrival queue, ``BrokerHub.wake_on_arrival``), and a pool that
only busy workers keep above its target as soon as one of them turns idle
(``BrokerHub.wake_on_idle``), instead of at the end of its interval.

No kopf here: the pod index and the event poster are handed in, so tests drive the
supervisor with fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

from workerpool_operator import api, conditions, scaling
from workerpool_operator.autoscaler import report
from workerpool_operator.autoscaler.broker import BrokerHub
from workerpool_operator.autoscaler.metrics import AutoscalerMetrics
from workerpool_operator.autoscaler.scaler import Cluster, PoolScaler
from workerpool_operator.pools import CachedPool, EventPoster, PoolCache, PoolKey

logger = logging.getLogger(__name__)

PodIndex = Mapping[PoolKey, Any]
"""``kopf.Index`` of pods by (namespace, pool): each value is a store of ``PodView``."""

DEFAULT_POLL_INTERVAL = float(api.Autoscaling().poll_interval_seconds)
"""For a pool whose spec no longer parses (its task stops at the next event)."""


def poll_interval(cached: CachedPool) -> float:
    if cached.pool is None:
        return DEFAULT_POLL_INTERVAL
    return float(cached.pool.spec.autoscaling.poll_interval_seconds)


def spread(interval: float) -> float:
    """Delay of a pool's first poll: a random point of its interval.

    An operator that starts (or a burst of pools created at once) would otherwise poll every
    pool in the same instant, interval after interval: 1000 reads queue behind the broker
    channels together, the last ones time out, and the broker idles in between. Spread out,
    the same polls arrive at an even rate (1000 pools every 2 s: 500 a second).
    """
    return random.uniform(0.0, interval)


IDLE_WAKE_GAP = 0.25
"""Least time between the start of a poll and a poll woken by a worker turning idle.

Workers of one pool that finish together wake one poll, not one each (the wake-up is one
event), and a pool whose workers turn idle again and again polls at most four times a
second, however many workers it has."""


ARRIVAL_FOLLOW_UP = 0.5
"""Seconds from a poll an arrival woke to one more poll.

The first job of a burst wakes the pool; its poll sees only the jobs that reached the queue
by then, often one. The follow-up sees the rest of the burst, so a pool goes 0 -> 1 -> 4
within half a second instead of waiting a whole interval for its fourth replica."""


class _Wake:
    """Why a pool's poller should poll before its interval ends (one event, two causes)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.idle = False

    def on_arrival(self) -> None:
        self.event.set()

    def on_idle(self) -> None:
        self.idle = True
        self.event.set()

    def clear(self) -> None:
        self.event.clear()
        self.idle = False


async def _until(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` at most ``timeout`` seconds; whether it was set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
    return event.is_set()


async def _next_poll(wake: _Wake, started: float, interval: float, woken_at: float | None) -> bool:
    """Wait until the pool's next poll; whether a job's arrival brings it forward.

    ``woken_at`` is when the last poll an arrival woke started. That poll is followed by
    one more after ``ARRIVAL_FOLLOW_UP``, and arrivals wake nothing until an interval after
    it: a pool that stays at zero with jobs arriving (paused, or at maxReplicas 0) polls at
    most three times per interval, not at every job. A worker turning idle brings the poll
    forward whenever it comes (the scaler only asks for that while busy workers hold the
    pool up), but no sooner than ``IDLE_WAKE_GAP`` after the last poll started.
    """
    arrivals_wake = woken_at is None or started >= woken_at + interval
    if woken_at == started:
        deadline = started + min(ARRIVAL_FOLLOW_UP, interval)
    elif not arrivals_wake and woken_at is not None:
        deadline = woken_at + interval
    else:
        deadline = started + interval
    while await _until(wake.event, deadline - time.monotonic()):
        if wake.idle:
            await asyncio.sleep(max(0.0, started + IDLE_WAKE_GAP - time.monotonic()))
            return False
        if arrivals_wake:
            return True
        wake.clear()  # an arrival soon after a woken poll waits for the interval
    return False


class Supervisor:
    """One polling task per autoscaled pool, started and stopped by the pool watch."""

    def __init__(
        self,
        *,
        pools: PoolCache,
        cluster: Cluster,
        broker: BrokerHub,
        metrics: AutoscalerMetrics,
        post: EventPoster,
        first_poll_delay: Callable[[float], float] = spread,
    ) -> None:
        self.pools = pools
        self.cluster = cluster
        self.broker = broker
        self.metrics = metrics
        self._post = post
        self._first_poll_delay = first_poll_delay
        self._tasks: dict[PoolKey, asyncio.Task[None]] = {}
        self._pods: PodIndex = {}
        self._chores: set[asyncio.Task[None]] = set()

    @property
    def autoscaled(self) -> list[PoolKey]:
        """Pools being autoscaled right now."""
        return sorted(self._tasks)

    def track(self, key: PoolKey, pods: PodIndex) -> None:
        """The cache changed for ``key``: start, keep or stop its task."""
        self._pods = pods
        cached = self.pools.get(key)
        if cached is None or cached.deleting or not cached.autoscaled:
            was_running = key in self._tasks
            self._stop(key)
            if was_running and cached is not None and not cached.deleting:
                self._background(self._mark_disabled(key, cached))
            return
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._run(key), name=f"autoscale {key}")

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _mark_disabled(self, key: PoolKey, cached: CachedPool) -> None:
        """Autoscaling was turned off: say so, and drop the autoscaler's other fields.

        Applying only the condition releases ``queue``, ``decisions`` and
        ``lastScaleTime`` (server-side apply removes fields a manager stops sending), so
        ``kubectl get wp`` no longer shows numbers nobody refreshes.
        """
        pool = cached.pool
        if pool is None:
            return
        try:
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
        wake = _Wake()
        scaler = PoolScaler(
            *key,
            cluster=self.cluster,
            broker=self.broker,
            metrics=self.metrics,
            post_event=self._post,
            remember=self.pools.remember,
            on_arrival=wake.on_arrival,
            on_idle=wake.on_idle,
        )
        try:
            cached = self.pools.get(key)
            if cached is not None:
                await asyncio.sleep(self._first_poll_delay(poll_interval(cached)))
            woken = False
            woken_at: float | None = None
            while True:
                cached = self.pools.get(key)
                if cached is None:
                    return
                started = time.monotonic()
                if woken:
                    woken_at = started
                wake.clear()
                try:
                    await scaler.poll(cached, self.pods_of(key))
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("autoscaling poll of %s/%s failed", *key)
                woken = await _next_poll(wake, started, poll_interval(cached), woken_at)
        finally:
            self._background(scaler.stop_waking())

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.broker.close()
