"""The worker side of a job queue: deliveries, retries, dead-lettering and draining.

A delivery is acknowledged only after its outcome is safely recorded: the result confirmed in
the results stream, a retry confirmed in a delay queue, or the message confirmed in the DLQ.
A worker that dies before that point leaves the message unacknowledged, and the broker hands
it to another worker (at-least-once delivery).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractConnection, AbstractRobustChannel
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from aiormq.abc import DeliveredMessage

from itl_controlplane_sdk import logs, tracing
from itl_controlplane_sdk.contract import replication, topology
from itl_controlplane_sdk.contract.settings import DEFAULT_MAX_JOB_BYTES
from itl_controlplane_sdk.errors import JobSubmissionError, RetryableJobError, UndecodableJobError
from itl_controlplane_sdk.workers import amqp
from itl_controlplane_sdk.workers.acks import AckBatcher
from itl_controlplane_sdk.workers.deliveries import DirectConsumers
from itl_controlplane_sdk.workers.envelope import JobEnvelope, decode_delivery, job_attributes
from itl_controlplane_sdk.workers.results import JobResult, JobStatus
from itl_controlplane_sdk.workers.slots import PrioritySlots

log = logging.getLogger(__name__)

WorkerCallback = Callable[[str, dict[str, Any]], Awaitable[JobResult]]

MAX_RETRY_DELAY_SECONDS = 300.0
RECORD_DEADLINE_SECONDS = 300.0
TRANSIENT_ERRORS = (AMQPError, ConnectionError, ChannelInvalidStateError, TimeoutError)

HEADER_REASON = "x-itl-dead-letter-reason"
HEADER_QUEUE = "x-itl-original-queue"
HEADER_ROUTING_KEY = "x-itl-original-routing-key"
HEADER_ATTEMPTS = "x-itl-attempts"
HEADER_FAILED_AT = "x-itl-failed-at"


def retry_delay_ms(attempt: int, base_delay: float) -> int:
    """Exponential backoff: base, 2*base, 4*base ... capped at five minutes.

    Delays are deterministic (no jitter) so each attempt number maps to one delay queue and
    the number of queues stays bounded.
    """
    delay = min(base_delay * 2.0 ** (attempt - 1), MAX_RETRY_DELAY_SECONDS)
    return max(1, round(delay * 1000))


def coerce_result(job_id: str, outcome: object) -> JobResult:
    """Accepts a JobResult or a ``WorkerRole.process_job``-style dict from a callback."""
    if isinstance(outcome, JobResult):
        return outcome
    if isinstance(outcome, Mapping):
        return JobResult.from_dict({"job_id": job_id, **outcome})
    raise TypeError(f"worker callback returned {type(outcome).__name__}, expected JobResult")


async def publish_until_recorded(
    publish: Callable[[], Awaitable[None]], *, what: str, deadline: float
) -> None:
    """Retries a confirmed publish across broker restarts until ``deadline`` (monotonic)."""
    delay = 0.2
    while True:
        try:
            await publish()
            return
        except TRANSIENT_ERRORS as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning(
                "could not record %s (%s); retrying in %.1fs", what, type(exc).__name__, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


class JobConsumer:
    """Consumes one job queue with bounded concurrency and drains on request."""

    def __init__(
        self,
        connection: AbstractConnection,
        *,
        queue_name: str,
        callback: WorkerCallback,
        prefetch: int,
        max_attempts: int,
        retry_base_delay: float,
        publish_timeout: float,
        results: Callable[[JobResult], Awaitable[None]],
        max_job_bytes: int = DEFAULT_MAX_JOB_BYTES,
        queue_type: replication.QueueType = "classic",
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        """``on_idle`` is called each time the last delivery in flight is settled."""
        self._connection = connection
        self._queue_name = queue_name
        self._queue_type = queue_type
        # One consumer per priority band (one band in classic mode), highest first.
        self._lanes = replication.band_queues(queue_name, queue_type)
        self._slots = PrioritySlots(prefetch, len(self._lanes)) if len(self._lanes) > 1 else None
        self._callback = callback
        self._prefetch = prefetch
        self._max_attempts = max_attempts
        self._retry_base_delay = retry_base_delay
        self._publish_timeout = publish_timeout
        self._publish_result = results
        self._max_job_bytes = max_job_bytes
        self._on_idle = on_idle
        self._channel: AbstractRobustChannel | None = None
        self._consumers: DirectConsumers | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._acks = AckBatcher()
        self._closing = False
        self._retry_queues: set[tuple[str, int]] = set()
        self.retries_scheduled = 0
        self.dead_lettered = 0

    @property
    def in_flight(self) -> int:
        """Concurrency slots held: deliveries between arrival and settlement."""
        return len(self._tasks)

    @property
    def unacked(self) -> int:
        """Deliveries the broker counts as unacknowledged by this consumer's channel.

        The client's mirror of the broker's count (AMQP does not report it per channel):
        every delivery from its arrival until its ack or nack frame is written.
        """
        return self._acks.unsettled

    @property
    def stuck(self) -> int:
        """Deliveries held unsettled with no job working on them: slots lost for good.

        Every unsettled delivery is either being handled (a slot) or waiting for its ack
        frame, so this is 0 unless a delivery escaped its handler; the health endpoints
        report it rather than let the autoscaler count the worker as idle.
        """
        return max(0, self._acks.open - len(self._tasks))

    async def start(self) -> None:
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        assert isinstance(channel, AbstractRobustChannel), "JobQueue connects robustly"
        self._channel = channel
        # Classic: the prefetch is the concurrency. Bands: each band's consumer may hold one
        # job more than the slots, so when a job of a band ends, the next one of that band is
        # already here and the freed slot does not go to a lower band for want of it.
        lookahead = 1 if self._slots is not None else 0
        await self._channel.set_qos(prefetch_count=self._prefetch + lookahead)
        for lane in self._lanes:
            # Declared through aio-pika, which declares them again when the channel reopens.
            await channel.declare_queue(
                lane, durable=True, arguments=replication.job_queue_arguments(self._queue_type)
            )
        self._consumers = DirectConsumers(channel, self._lanes, self._on_message)
        await self._consumers.start()

    async def drain(self, timeout: float) -> int:
        """Stops taking jobs, waits up to ``timeout`` for in-flight ones, requeues the rest."""
        self._closing = True
        if self._consumers is not None:
            await self._consumers.cancel()
        pending: set[asyncio.Task[None]] = set()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        await self._acks.wait_sent()
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        return len(pending)

    def _lane(self, message: DeliveredMessage) -> str:
        """The queue (band) a delivery came from: its retries and dead letters name it."""
        lane = self._consumers.queue_of(message) if self._consumers is not None else None
        return lane or self._queue_name

    async def _on_message(self, message: DeliveredMessage, rank: int) -> None:
        assert message.delivery_tag is not None
        if self._closing:
            await message.channel.basic_nack(message.delivery_tag, requeue=True)
            return
        # aiormq runs each delivery in a task of its own: handle the job in it and keep it
        # for draining.
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._acks.track(message)
        try:
            if self._slots is None:
                await self._handle(message)
            else:
                await self._handle_in_band(message, rank)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug of ours: never leave the delivery held
            await self._settle_after_bug(message, exc)
        finally:
            self._tasks.discard(task)
            if not self._tasks and self._on_idle is not None:
                self._on_idle()

    async def _handle_in_band(self, message: DeliveredMessage, rank: int) -> None:
        """Waits for a job slot (``PrioritySlots``: highest band first), then handles."""
        assert self._slots is not None
        try:
            await self._slots.acquire(rank)
        except asyncio.CancelledError:
            await self._requeue(message)
            raise
        try:
            if self._closing:
                await self._requeue(message)
                return
            await self._handle(message)
        finally:
            self._slots.release()

    async def _settle_after_bug(self, message: DeliveredMessage, exc: BaseException) -> None:
        """Dead-letters a delivery whose handling broke, or rejects it to the queue's DLX."""
        message_id = message.header.properties.message_id
        log.error("handling of message %s failed", message_id, exc_info=exc)
        if not self._acks.is_open(message):
            return  # already settled before the failure
        reason = f"worker error while handling the message: {type(exc).__name__}: {exc}"
        try:
            await self._settle(message, dead_letter_reason=reason)
        except asyncio.CancelledError:
            raise
        except BaseException:
            log.exception("could not dead-letter %s; rejecting it instead", message_id)
            if self._acks.is_open(message):
                try:
                    await self._acks.nack(message, requeue=False)
                except TRANSIENT_ERRORS:
                    log.warning("could not reject %s; the broker will redeliver it", message_id)

    async def _handle(self, message: DeliveredMessage) -> None:
        properties = message.header.properties
        try:
            envelope = decode_delivery(
                message.body,
                content_type=properties.content_type,
                content_encoding=properties.content_encoding,
                max_bytes=self._max_job_bytes,
            )
        except UndecodableJobError as exc:
            log.error("dead-lettering undecodable message %s: %s", properties.message_id, exc)
            await self._settle(message, dead_letter_reason=str(exc))
            return
        with (
            logs.job_context(envelope.job_id),
            tracing.span(
                "process_job", job_attributes(envelope), kind="CONSUMER", headers=properties.headers
            ) as current,
        ):
            outcome = await self._process(message, envelope)
            tracing.set_attributes(current, **{"itl.job.outcome": outcome})
            if outcome == JobStatus.FAILED.value:
                tracing.mark_error(current, "job failed")

    async def _process(self, message: DeliveredMessage, envelope: JobEnvelope) -> str:
        """Runs one attempt and records its outcome; returns it (completed, failed, retry...)."""
        try:
            outcome = await self._callback(envelope.job_id, envelope.model_dump(mode="json"))
            result = coerce_result(envelope.job_id, outcome)
        except asyncio.CancelledError:
            await self._requeue(message)
            raise
        except RetryableJobError as exc:
            if envelope.attempt < self._max_attempts:
                await self._retry(message, envelope, exc)
                return "retry"
            result = JobResult(
                job_id=envelope.job_id,
                status=JobStatus.FAILED,
                error=f"gave up after {envelope.attempt} attempts: {exc}",
            )
        except BaseException as exc:  # any failure of the job, even a BaseException, is its result
            log.exception("job %s failed", envelope.job_id)
            result = JobResult(
                job_id=envelope.job_id,
                status=JobStatus.FAILED,
                error=f"{type(exc).__name__}: {exc}",
            )
        await self._record(message, envelope, result)
        return result.status.value

    async def _record(
        self, message: DeliveredMessage, envelope: JobEnvelope, result: JobResult
    ) -> None:
        deadline = time.monotonic() + RECORD_DEADLINE_SECONDS
        try:
            with tracing.span("publish_result", {"itl.job.status": result.status.value}):
                await publish_until_recorded(
                    lambda: self._publish_result(result),
                    what=f"result of {envelope.job_id}",
                    deadline=deadline,
                )
        except (JobSubmissionError, *TRANSIENT_ERRORS):
            log.exception("result of job %s not recorded; requeueing the job", envelope.job_id)
            await self._requeue(message)
            return
        reason = result.error if result.status is JobStatus.FAILED else None
        await self._settle(message, dead_letter_reason=reason, attempts=envelope.attempt)

    async def _retry(
        self, message: DeliveredMessage, envelope: JobEnvelope, exc: Exception
    ) -> None:
        delay_ms = retry_delay_ms(envelope.attempt, self._retry_base_delay)
        lane = self._lane(message)
        retried = envelope.model_copy(update={"attempt": envelope.attempt + 1})
        log.warning(
            "job %s attempt %d failed (%s); retrying in %d ms",
            envelope.job_id,
            envelope.attempt,
            exc,
            delay_ms,
        )

        async def publish() -> None:
            assert self._channel is not None
            if (lane, delay_ms) not in self._retry_queues:
                await amqp.declare_retry_queue(self._channel, lane, delay_ms, self._queue_type)
                self._retry_queues.add((lane, delay_ms))
            await amqp.publish_confirmed(
                self._channel,
                "",
                retried.to_json(),
                amqp.persistent_properties(
                    envelope.job_id,
                    priority=message.header.properties.priority,
                    headers=message.header.properties.headers,
                ),
                topology.retry_queue_name(lane, delay_ms),
                timeout=self._publish_timeout,
                what=f"retry of job {envelope.job_id}",
            )

        try:
            with tracing.span("retry_job", {"itl.job.next_attempt": retried.attempt}):
                await publish_until_recorded(
                    publish,
                    what=f"retry of {envelope.job_id}",
                    deadline=time.monotonic() + RECORD_DEADLINE_SECONDS,
                )
        except (JobSubmissionError, *TRANSIENT_ERRORS):
            log.exception("retry of job %s not recorded; requeueing the job", envelope.job_id)
            await self._requeue(message)
            return
        self.retries_scheduled += 1
        self._ack(message)

    async def _settle(
        self, message: DeliveredMessage, *, dead_letter_reason: str | None, attempts: int = 1
    ) -> None:
        """Acks the message, first copying it to the DLQ with the reason when it failed."""
        if dead_letter_reason is not None:
            properties = message.header.properties
            headers = dict(properties.headers or {})
            headers.update(
                {
                    HEADER_REASON: dead_letter_reason[:1000],
                    HEADER_QUEUE: self._lane(message),
                    HEADER_ROUTING_KEY: message.routing_key or "",
                    HEADER_ATTEMPTS: attempts,
                    HEADER_FAILED_AT: datetime.now(UTC).isoformat(),
                }
            )

            async def publish() -> None:
                assert self._channel is not None
                await amqp.publish_confirmed(
                    self._channel,
                    topology.DEAD_LETTER_EXCHANGE,
                    message.body,
                    amqp.persistent_properties(
                        properties.message_id,
                        content_type=properties.content_type,
                        priority=properties.priority,
                        headers=headers,
                    ),
                    topology.DEAD_LETTER_ROUTING_KEY,
                    timeout=self._publish_timeout,
                    what=f"dead letter {properties.message_id}",
                )

            try:
                await publish_until_recorded(
                    publish,
                    what=f"dead letter {properties.message_id}",
                    deadline=time.monotonic() + RECORD_DEADLINE_SECONDS,
                )
            except (JobSubmissionError, *TRANSIENT_ERRORS):
                log.exception(
                    "could not dead-letter %s; rejecting it instead", properties.message_id
                )
                await self._acks.nack(message, requeue=False)
                return
            self.dead_lettered += 1
        self._ack(message)

    def _ack(self, message: DeliveredMessage) -> None:
        self._acks.ack(message)

    async def _requeue(self, message: DeliveredMessage) -> None:
        try:
            await self._acks.nack(message, requeue=True)
        except TRANSIENT_ERRORS:
            log.warning(
                "could not requeue %s; the broker will redeliver it",
                message.header.properties.message_id,
            )
