"""Cancelling jobs that have not started, and expiring jobs past their deadline.

A job waiting in a queue cannot be removed from the middle of it, so cancellation works by
telling the worker that will eventually receive it to skip it:

- ``JobQueue.cancel_job`` appends the job id to the ``provider.cancellations`` stream, then a
  ``cancelled`` result to ``provider.results``, so ``get_result`` in any process answers
  "cancelled" at once (the first terminal result of a job wins in every reader).
- Every consuming JobQueue tails ``provider.cancellations`` from its first message. Cancels
  are rare and tiny, so reading the whole retention window is cheap, and a worker started long
  after the cancel still knows about it. Before it consumes jobs, a watcher appends a sync
  marker of its own and waits until it reads it back, so it has caught up with every cancel
  recorded before it started. ``guarded`` wraps the worker callback: a cancelled
  job, or one whose envelope ``deadline`` has passed, is settled without running.
- A job still running 50 ms after it started gets a best-effort ``processing`` marker in the
  results stream (AMQP type ``processing``, so readers need not decode it). An API that has
  seen the marker refuses to cancel (the job is running). Jobs that finish sooner get none:
  a marker per job was the largest single cost of a no-op job.

The one race left: a cancel issued in the first 50 ms of a job, or before its marker reaches
the canceller. The provider then runs while readers report
``cancelled``. Providers are idempotent (at-least-once delivery already demands it), so the
client can repeat the operation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aio_pika
from aio_pika.exceptions import ChannelPreconditionFailed

from itl_controlplane_sdk.contract import replication
from itl_controlplane_sdk.contract.topology import CANCELLATIONS_STREAM
from itl_controlplane_sdk.workers.results import JobResult, JobStatus

if TYPE_CHECKING:
    from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue

log = logging.getLogger(__name__)

MAX_REMEMBERED = 100_000
CANCEL_PREFETCH = 500
SYNC_PREFIX = "sync-"
SYNC_TIMEOUT_SECONDS = 10.0
MARKER_DELAY_SECONDS = 0.05

WorkerCallback = Callable[[str, dict[str, Any]], Awaitable[JobResult]]
MarkStarted = Callable[[str], Awaitable[None]]


async def declare_cancellations_stream(
    connection: AbstractConnection,
    retention_seconds: float,
    queue_type: replication.QueueType = "classic",
) -> None:
    """The cancellations stream (idempotent; an existing stream keeps its settings)."""
    arguments: dict[str, Any] = {
        "x-queue-type": "stream",
        "x-max-age": f"{max(1, int(retention_seconds))}s",
        "x-max-length-bytes": 100_000_000,
        **replication.stream_arguments(queue_type),
    }
    try:
        async with connection.channel() as channel:
            await channel.declare_queue(CANCELLATIONS_STREAM, durable=True, arguments=arguments)
    except ChannelPreconditionFailed:
        log.warning("stream %s exists with other settings; keeping them", CANCELLATIONS_STREAM)


class CancellationWatcher:
    """Tails the cancellations stream into a bounded map of job id -> terminal result."""

    def __init__(
        self, connection: AbstractConnection, *, max_remembered: int = MAX_REMEMBERED
    ) -> None:
        self._connection = connection
        self._max = max_remembered
        self._cancelled: OrderedDict[str, JobResult] = OrderedDict()
        self._queue: AbstractQueue | None = None
        self._sync_marker = f"{SYNC_PREFIX}{uuid.uuid4().hex}"
        self._synced: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Tails the stream and returns once it has read everything recorded before now."""
        self._synced = asyncio.get_running_loop().create_future()
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=CANCEL_PREFETCH)
        self._queue = await channel.declare_queue(CANCELLATIONS_STREAM, passive=True)
        await self._queue.consume(self._on_message, arguments={"x-stream-offset": "first"})
        marker = JobResult(self._sync_marker, JobStatus.CANCELLED, error="sync marker")
        await channel.default_exchange.publish(
            aio_pika.Message(marker.to_json(), message_id=self._sync_marker),
            routing_key=CANCELLATIONS_STREAM,
        )
        try:
            await asyncio.wait_for(asyncio.shield(self._synced), SYNC_TIMEOUT_SECONDS)
        except TimeoutError:
            log.warning("%s not read back in time; cancels may be missed", CANCELLATIONS_STREAM)

    async def stop(self) -> None:
        if self._queue is not None:
            await self._queue.channel.close()
            self._queue = None

    def cancelled(self, job_id: str) -> JobResult | None:
        return self._cancelled.get(job_id)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        await message.ack()
        try:
            result = JobResult.from_dict(json.loads(message.body))
        except (ValueError, KeyError, TypeError):
            log.warning("skipping undecodable message in %s", CANCELLATIONS_STREAM)
            return
        if result.job_id.startswith(SYNC_PREFIX):
            if result.job_id == self._sync_marker and self._synced and not self._synced.done():
                self._synced.set_result(None)
            return
        if result.job_id in self._cancelled:
            return
        self._cancelled[result.job_id] = result
        while len(self._cancelled) > self._max:
            self._cancelled.popitem(last=False)


def expired(job_id: str, payload: dict[str, Any], now: datetime | None = None) -> JobResult | None:
    """A failed result when the envelope's ``deadline`` has passed, else None."""
    raw = payload.get("deadline")
    if not raw:
        return None
    try:
        deadline = datetime.fromisoformat(str(raw))
    except ValueError:
        return None
    if deadline.tzinfo is None:
        deadline = deadline.replace(tzinfo=UTC)
    if (now or datetime.now(UTC)) <= deadline:
        return None
    return JobResult(
        job_id,
        JobStatus.FAILED,
        error=f"job {job_id} timed out: not started before its deadline {deadline.isoformat()}",
    )


def guarded(
    callback: WorkerCallback, *, watcher: CancellationWatcher, mark_started: MarkStarted
) -> WorkerCallback:
    """The worker callback, skipping cancelled and expired jobs and marking started ones."""

    async def send_marker(job_id: str) -> None:
        try:
            await mark_started(job_id)
        except Exception as exc:  # a marker is best effort; the job itself must still run
            log.debug("processing marker of %s not sent: %s", job_id, type(exc).__name__)

    async def run(job_id: str, payload: dict[str, Any]) -> JobResult:
        skipped = watcher.cancelled(job_id) or expired(job_id, payload)
        if skipped is not None:
            log.info("skipping job %s: %s", job_id, skipped.error)
            return JobResult(job_id, skipped.status, error=skipped.error)
        # Only jobs still running after MARKER_DELAY_SECONDS get a marker: most jobs finish
        # sooner, and a marker per job was the largest single cost of the worker's hot path.
        loop = asyncio.get_running_loop()
        markers: set[asyncio.Task[None]] = set()
        timer = loop.call_later(
            MARKER_DELAY_SECONDS, lambda: markers.add(loop.create_task(send_marker(job_id)))
        )
        try:
            return await callback(job_id, payload)
        finally:
            timer.cancel()
            if markers:
                await asyncio.gather(*markers, return_exceptions=True)

    return run
