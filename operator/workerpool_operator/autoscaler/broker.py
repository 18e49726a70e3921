"""Queue depth and worker heartbeats from RabbitMQ, one connection per broker URL.

Every pool polls through a ``BrokerHub``. The hub keeps one SDK ``JobQueue`` per distinct
RabbitMQ URL, shared by all pools that use that URL: 100 pools on one broker make one
AMQP connection, not 100. Each ``JobQueue`` is robust (aio-pika reconnects by itself
after a broker restart). The hub only has to:

- connect lazily, at most one attempt per URL at a time, and not more often than
  ``retry_seconds`` after a failure, so 100 pools do not stampede a broker that is down;
- bound every passive declare by ``read_timeout`` at the broker, because a hung read must
  look like missing data (``StatsTimeout``), not stall the poll loop. Waiting for one of
  the connection's stats channels is not a failure: when the pools ask for more reads a
  second than the broker answers, polls stretch evenly instead of timing out together
  (which flipped ``ScalingActive`` and wrote status for every pool); only a read that
  cannot even start within ``wait_timeout`` fails. Bounded with ``asyncio.timeout``, not
  ``wait_for``: the read runs in the poll's own task instead of a new task per read (500
  reads a second at 1000 pools);
- read the dead-letter queue, which all pools of a broker share, at most once per
  ``dlq_refresh_seconds`` per URL;
- close connections no pool has used for ``idle_seconds``;
- keep an arrival queue (the SDK's ``ArrivalWatch``) for each pool at zero replicas, on the
  same connection, so the pool's first job wakes its poller instead of waiting for the next
  poll. A broker that refuses them (the broker user lacks the rights, an exchange is
  missing) is logged once and asked again only after ``wake_retry_seconds``: polling alone
  goes on as before;
- call a pool's poller when one of its workers reports it turned idle, while the pool's last
  decision kept it above its target only for busy workers (``wake_on_idle``): the heartbeats
  arrive on the hub's subscription anyway, so this costs the broker nothing.

A heartbeat read that fails does not fail the observation. The decision then sees no
heartbeats, treats Ready pods as busy and silent consumers as full, and so errs towards
keeping workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from itl_controlplane_sdk.contract import topology
from itl_controlplane_sdk.contract.replication import QueueType
from itl_controlplane_sdk.contract.tls import BrokerTls
from itl_controlplane_sdk.workers.queue import JobQueue
from workerpool_operator import scaling
from workerpool_operator.autoscaler import observe

logger = logging.getLogger(__name__)


class ArrivalQueues(Protocol):
    """The part of the SDK's ``ArrivalWatch`` the hub uses."""

    def watching(self, key: str) -> bool: ...

    async def watch(
        self,
        key: str,
        *,
        bindings: Sequence[str],
        on_arrival: Callable[[], None],
        queue_type: QueueType = "classic",
    ) -> None: ...

    async def rearm(self, key: str) -> None: ...

    async def unwatch(self, key: str) -> None: ...


class QueueClient(Protocol):
    """The part of the SDK's ``JobQueue`` the hub uses (a fake in unit tests)."""

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def get_queue_stats(
        self, queues: list[str] | None = None, *, queue_type: QueueType | None = None
    ) -> dict[str, Any]: ...

    async def get_worker_heartbeats(self, pool: str | None = None) -> list[dict[str, Any]]: ...

    def on_worker_idle(self, pool: str, callback: Callable[[], None] | None) -> bool: ...

    def arrival_watch(self) -> ArrivalQueues: ...


CONNECTION_QUEUE_NAME = "workerpool-autoscaler"
"""Only names the connection (``itl-jobqueue workerpool-autoscaler`` in RabbitMQ's
connection list): every read passes its queue explicitly, and nothing is declared."""


STATS_CHANNELS = 16
"""Passive declares in flight at once on the hub's one connection per broker.

Each pool polls on its own, so up to this many reads overlap instead of queueing one
round trip at a time: 1000 pools every 2 s are 500 reads a second, and one channel managed
about 170 a second on a loaded 2-core machine (16: about 800). Channels beyond the first
open only when that many reads wait at once."""


def _job_queue(url: str, tls: BrokerTls | None = None, read_timeout: float = 5.0) -> QueueClient:
    # declare_topology=False: the operator observes queues, it never creates them; it reads
    # no results either, so it opens no stream-protocol connection (results_protocol="amqp").
    # publish_timeout bounds each passive declare (the hub never publishes).
    queue: QueueClient = JobQueue(
        url,
        queue_name=CONNECTION_QUEUE_NAME,
        declare_topology=False,
        results_protocol="amqp",
        connect_timeout=5.0,
        publish_timeout=read_timeout,
        tls=tls,
        stats_channels=STATS_CHANNELS,
    )
    return queue


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerRead:
    """One pool's view of its broker at one poll."""

    reading: observe.QueueReading | scaling.ObservationFailure
    heartbeats: tuple[scaling.WorkerHeartbeat, ...] = ()


@dataclasses.dataclass
class _Connection:
    client: QueueClient
    connected: bool = False
    failed_at: float | None = None
    last_error: str = ""
    used_at: float = 0.0
    dlq: tuple[float, int | None] | None = None
    subscribed: bool = False
    """The heartbeat subscription is up: later heartbeat reads are in-memory snapshots."""
    wake_failed_at: float | None = None
    wake_warned: bool = False
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)


class BrokerHub:
    """Shared broker connections and the reads a poll needs."""

    def __init__(
        self,
        *,
        client_factory: Callable[[str], QueueClient] | None = None,
        tls: BrokerTls | None = None,
        read_timeout: float = 5.0,
        wait_timeout: float = 60.0,
        retry_seconds: float = 2.0,
        dlq_refresh_seconds: float = 15.0,
        idle_seconds: float = 600.0,
        wake_retry_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = client_factory or functools.partial(
            _job_queue, tls=tls, read_timeout=read_timeout
        )
        self._read_timeout = read_timeout
        self._wait_timeout = wait_timeout
        self._retry_seconds = retry_seconds
        self._dlq_refresh = dlq_refresh_seconds
        self._idle_seconds = idle_seconds
        self._wake_retry = wake_retry_seconds
        self._clock = clock
        self._connections: dict[str, _Connection] = {}

    @property
    def connection_count(self) -> int:
        """Distinct broker URLs with a connection (or an attempt) right now."""
        return len(self._connections)

    async def read(
        self, url: str, *, queue: str, pool: str, queue_type: QueueType = "classic"
    ) -> BrokerRead:
        """Queue statistics and heartbeats for one pool, or why they are missing.

        A replicated pool's depth is the sum of its priority bands, read in one call; a band
        that cannot be read makes the whole reading missing (the scaler holds), never smaller.
        """
        await self._close_idle()
        conn = self._connections.get(url)
        if conn is None:
            conn = self._connections[url] = _Connection(client=self._factory(url))
        conn.used_at = self._clock()
        failure = await self._ensure_connected(conn)
        if failure is not None:
            return BrokerRead(failure)
        try:
            async with asyncio.timeout(self._wait_timeout):
                stats = await (
                    conn.client.get_queue_stats([queue])
                    if queue_type == "classic"
                    else conn.client.get_queue_stats([queue], queue_type=queue_type)
                )
        except TimeoutError:
            return BrokerRead(
                scaling.ObservationFailure(
                    observe.STATS_TIMEOUT, f"no queue statistics within {self._wait_timeout}s"
                )
            )
        except Exception as exc:  # the SDK promises not to raise; never trust a promise here
            message = str(exc) or type(exc).__name__
            return BrokerRead(scaling.ObservationFailure(observe.BROKER_UNREACHABLE, message))
        reading = observe.queue_reading(stats, queue=queue, dead_letter_queue=None)
        if isinstance(reading, scaling.ObservationFailure):
            return BrokerRead(reading)
        reading = dataclasses.replace(reading, dead_letters=await self._dead_letters(conn))
        return BrokerRead(reading, await self._heartbeats(conn, queue=queue, pool=pool))

    async def wake_on_arrival(
        self,
        url: str,
        *,
        key: str,
        bindings: Sequence[str],
        on_arrival: Callable[[], None],
        queue_type: QueueType = "classic",
    ) -> None:
        """Call ``on_arrival`` when the next job reaches the pool ``key`` (at zero replicas).

        Only after a read of this poll succeeded, so the pool's queue exists (an arrival
        queue bound alone would take its jobs away from the alternate exchange). Already
        watching: re-arms the watch, so a poll that left the pool at zero lets the next job
        wake it again. Never raises.
        """
        conn = self._connections.get(url)
        if conn is None or not conn.connected:
            return
        now = self._clock()
        if conn.wake_failed_at is not None and now - conn.wake_failed_at < self._wake_retry:
            return
        try:
            arrivals = conn.client.arrival_watch()
            async with asyncio.timeout(self._read_timeout):
                if arrivals.watching(key):
                    await arrivals.rearm(key)
                else:
                    await arrivals.watch(
                        key, bindings=bindings, on_arrival=on_arrival, queue_type=queue_type
                    )
        except Exception as exc:
            conn.wake_failed_at = now
            message = str(exc) or type(exc).__name__
            if not conn.wake_warned:
                conn.wake_warned = True
                logger.warning(
                    "no arrival queues on this broker (%s): idle pools wake at their next "
                    "poll; trying again every %ss",
                    message,
                    self._wake_retry,
                )
            else:
                logger.debug("arrival queue for %s refused: %s", key, message)
            return
        conn.wake_failed_at = None

    def wake_on_idle(self, url: str, *, pool: str, on_idle: Callable[[], None] | None) -> bool:
        """Call ``on_idle`` whenever a worker of ``pool`` (its heartbeat identity) turns idle;
        None stops. Only once this URL's heartbeat subscription is up (returns whether it
        is); never raises."""
        conn = self._connections.get(url)
        if conn is None or not conn.subscribed:
            return False
        return conn.client.on_worker_idle(pool, on_idle)

    async def stop_waking(self, url: str, key: str) -> None:
        """Drop the pool's arrival queue, if it has one (no broker request otherwise)."""
        conn = self._connections.get(url)
        if conn is None or not conn.connected:
            return
        try:
            async with asyncio.timeout(self._read_timeout):
                await conn.client.arrival_watch().unwatch(key)
        except Exception as exc:
            logger.debug("arrival queue of %s not deleted: %s", key, exc)

    async def _ensure_connected(self, conn: _Connection) -> scaling.ObservationFailure | None:
        if conn.connected:
            return None
        async with conn.lock:
            if conn.connected:
                return None
            now = self._clock()
            if conn.failed_at is not None and now - conn.failed_at < self._retry_seconds:
                return scaling.ObservationFailure(observe.BROKER_UNREACHABLE, conn.last_error)
            try:
                await asyncio.wait_for(conn.client.connect(), timeout=self._read_timeout + 5)
            except Exception as exc:
                conn.failed_at = self._clock()
                conn.last_error = str(exc) or type(exc).__name__
                logger.warning("cannot connect to the broker: %s", conn.last_error)
                return scaling.ObservationFailure(observe.BROKER_UNREACHABLE, conn.last_error)
            conn.connected, conn.failed_at, conn.last_error = True, None, ""
            return None

    async def _dead_letters(self, conn: _Connection) -> int | None:
        now = self._clock()
        if conn.dlq is not None and now - conn.dlq[0] < self._dlq_refresh:
            return conn.dlq[1]
        count: int | None = None
        try:
            dlq = topology.DEAD_LETTER_QUEUE
            async with asyncio.timeout(self._read_timeout):
                stats = await conn.client.get_queue_stats([dlq])
            entry = observe.queue_reading(stats, queue=dlq, dead_letter_queue=None)
            if isinstance(entry, observe.QueueReading):
                count = entry.ready
        except Exception as exc:
            logger.debug("dead-letter queue unreadable: %s", exc)
        conn.dlq = (now, count)
        return count

    async def _heartbeats(
        self, conn: _Connection, *, queue: str, pool: str
    ) -> tuple[scaling.WorkerHeartbeat, ...]:
        try:
            if conn.subscribed:  # a snapshot of what arrived: nothing to wait for
                raw = await conn.client.get_worker_heartbeats(pool)
            else:  # the first read subscribes, which asks the broker
                async with asyncio.timeout(self._read_timeout):
                    raw = await conn.client.get_worker_heartbeats(pool)
                conn.subscribed = True
        except Exception as exc:
            logger.warning("no heartbeats for pool %s: %s", pool, repr(exc))
            return ()
        return observe.heartbeats(raw, queue=queue)

    async def _close_idle(self) -> None:
        now = self._clock()
        for url, conn in list(self._connections.items()):
            if now - conn.used_at > self._idle_seconds and not conn.lock.locked():
                del self._connections[url]
                await self._disconnect(conn)

    async def _disconnect(self, conn: _Connection) -> None:
        if conn.connected:
            with contextlib.suppress(Exception):
                await conn.client.disconnect()

    async def close(self) -> None:
        """Close every connection (operator shutdown)."""
        connections, self._connections = list(self._connections.values()), {}
        for conn in connections:
            await self._disconnect(conn)
