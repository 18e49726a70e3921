"""Reading job results from the ``provider.results`` stream, from any process.

The reader is the same over either protocol (``RESULTS_PROTOCOL``): it gets the stream's
records through a ``Subscription``, an AMQP 0.9.1 stream consumer (``AmqpSubscription``) or a
subscription over RabbitMQ's stream protocol (``stream_results``).

Results are appended to a RabbitMQ stream, which keeps them for the retention window no matter
who reads them. A ``ResultReader`` tails the stream once per process and keeps the newest
results in a bounded LRU cache, so waiting callers are woken without polling and memory stays
bounded. A result the cache cannot vouch for (published before this process started tailing,
or evicted since) is found by a short-lived scan that starts at the job's submission time,
which the time-ordered job id encodes.

A scan reads history only: it stops at the newest stream offset the tail had seen when the
look-up began (the tail delivers everything after that to the waiting caller), or when no
look-up it can answer waits any more (found, or timed out), whichever comes first. It shares the
connection with submits, so it stops in an order that cannot hurt it: it stops acking, waits
for its consumer's cancel to be confirmed (no delivery follows that), then closes its channel.
Its AMQP calls are never cancelled half-way: aiormq answers a cancelled call by closing the
channel, and a channel closed while deliveries still arrive for it stalls the connection's
reader, and with it every publish. So nothing cancels a scan: look-ups that leave and
``stop`` make it stop, and it winds down in that order (``stop`` waits ``SCAN_STOP_SECONDS`` for
that before it gives up on it). At most ``MAX_SCANS`` run at once; further look-ups wait for
a turn within their own timeout. A scan also answers every look-up it reads past whose history
starts no earlier than its own (so what it reads is that job's first terminal result), and
reads on past its own result while such look-ups still wait: look-ups of many old results (a
benchmark reading its results at the end) mostly share one scan instead of taking one each.

The first terminal result of a job wins, in the cache as in a scan: a job cancelled before it
started, or delivered twice, may get a second terminal result, and every reader must agree on
the same one. ``processing`` markers (see ``cancellation``) are kept in a second bounded map so
an API can tell a started job from a waiting one.

The cache holds each result's message body as it came, with the time it was stored (as the
stream protocol reports it; over AMQP 0.9.1, its arrival), and decodes it
only when asked: a reader sees every result of the system (an API process, most of them for
jobs nobody there waits for), so it should not pay to decode them, and bytes and floats are
invisible to Python's garbage collector. Ten thousand decoded results were ~50 000 tracked
objects, and a full collection over them paused a busy client for 20-60 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from aio_pika.exceptions import ChannelPreconditionFailed

from itl_controlplane_sdk.contract import topology
from itl_controlplane_sdk.workers.envelope import job_id_time
from itl_controlplane_sdk.workers.results import JobResult, JobStatus

if TYPE_CHECKING:
    from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

log = logging.getLogger(__name__)

PROCESSING_MESSAGE_TYPE = "processing"
"""AMQP ``type`` of processing markers (``cancellation`` writes them)."""

STREAM_PREFETCH = 500
TAIL_ACK_EVERY = 100
"""The tail acks every 100th message with ``multiple``: acks on a stream only return credit
(nothing is removed), so one frame per 100 results instead of one per result keeps every
reader's CPU per job lower, and 100 < STREAM_PREFETCH means the credit never runs out."""
CLOCK_SKEW_SECONDS = 5.0
MAX_SCANS = 4
"""Scans of one reader running at once; more look-ups wait for a turn within their timeout.
Each scan reads as fast as the process can decode frames, on the connection submits use, so
their number bounds how much they slow submits down."""
SCAN_STOP_SECONDS = 5.0
"""How long ``ResultReader.stop`` waits for its scans to wind down (their consumer's cancel is
confirmed behind at most ``STREAM_PREFETCH`` deliveries) before it cancels the rest."""
OFFSET_HEADER = "x-stream-offset"
TAIL_RETRY_SECONDS = 1.0
"""Pause between two attempts to start a tail the stream could not serve yet."""


def _offset(message: AbstractIncomingMessage) -> int | None:
    offset = (message.headers or {}).get(OFFSET_HEADER)
    return offset if isinstance(offset, int) else None


def _decode_result(body: bytes) -> JobResult | None:
    try:
        data: Any = json.loads(body)
        return JobResult.from_dict(data)
    except (ValueError, KeyError, TypeError, RecursionError):
        log.warning("skipping undecodable message in %s", topology.RESULTS_STREAM)
        return None


def _stream_offset(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(max(0.0, epoch_seconds), UTC)


RecordHandler = Callable[[str | None, str | None, bytes, int | None, float | None], Awaitable[bool]]
"""Called per record of the stream with (message id, message type, body, stream offset, when
the broker stored it in epoch seconds, or None where the protocol does not say); returns True
to stop reading (the subscription then ignores whatever still arrives)."""


class StreamNotReadableError(Exception):
    """The node has no running member of the results stream yet (a node that has just
    restarted, before the stream coordinator restarts its replica): worth trying again."""


class Subscription(Protocol):
    """A reader of the results stream from some point in time until ``close``."""

    async def close(self) -> None: ...


OpenSubscription = Callable[[float, RecordHandler], Awaitable[Subscription]]
"""Starts reading the results stream at ``since`` (epoch seconds), one protocol or the other:
``AmqpSubscription.open`` here, ``stream_results.StreamSubscription`` over the stream port."""


class AmqpSubscription:
    """The results stream read over AMQP 0.9.1: a stream consumer on a channel of its own.

    It closes in an order that cannot hurt the shared connection: it stops acking, waits for
    its consumer's cancel to be confirmed (no delivery follows that), then closes its channel
    (the module docstring says why).
    """

    def __init__(self, channel: AbstractChannel, on_record: RecordHandler) -> None:
        self._channel = channel
        self._on_record = on_record
        self._stopped = False
        self._unacked = 0
        self._consumer_tag: str | None = None
        self._queue: Any = None

    @classmethod
    async def open(
        cls, connection: AbstractConnection, since: float, on_record: RecordHandler
    ) -> AmqpSubscription:
        channel = await connection.channel()
        subscription = cls(channel, on_record)
        try:
            await channel.set_qos(prefetch_count=STREAM_PREFETCH)
            subscription._queue = await channel.declare_queue(topology.RESULTS_STREAM, passive=True)
            subscription._consumer_tag = await subscription._queue.consume(
                subscription._on_message, arguments={OFFSET_HEADER: _stream_offset(since)}
            )
        except ChannelPreconditionFailed as exc:
            # RabbitMQ 3.10 serves an AMQP stream consumer from the member on its own node.
            with contextlib.suppress(Exception):
                await channel.close()
            raise StreamNotReadableError(str(exc)) from None
        except BaseException:
            with contextlib.suppress(Exception):
                await channel.close()
            raise
        return subscription

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if self._stopped:
            # Never ack once stopped: the channel's Close may be on its way, and a frame on a
            # closed channel makes the broker close the connection.
            return
        self._unacked += 1
        if self._unacked >= TAIL_ACK_EVERY:
            self._unacked = 0
            await message.ack(multiple=True)
        # AMQP 0.9.1 deliveries of a stream carry its offset but not when it was stored.
        record = (message.message_id, message.type, message.body, _offset(message), None)
        if await self._on_record(*record):
            self._stopped = True

    async def close(self) -> None:
        self._stopped = True
        try:
            if self._queue is not None and self._consumer_tag is not None:
                await self._queue.cancel(self._consumer_tag)
        except Exception as exc:  # the connection went away: nothing left to protect
            log.debug("results consumer not cancelled: %s", type(exc).__name__)
        finally:
            with contextlib.suppress(Exception):
                await self._channel.close()


class ResultReader:
    """One tail of the results stream plus an LRU cache of terminal results."""

    def __init__(
        self, subscribe: OpenSubscription, *, cache_size: int, lookback_seconds: float
    ) -> None:
        self._subscribe = subscribe
        self._cache_size = cache_size
        self._lookback = lookback_seconds
        # job id -> (message body, time stored): terminal results, decoded on demand.
        self._cache: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        # job id -> time a processing marker arrived.
        self._progress: OrderedDict[str, float] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[JobResult]]] = {}
        self._complete_since = 0.0
        self._tail: Subscription | None = None
        self._tail_opener: asyncio.Task[None] | None = None
        self._tail_offset: int | None = None
        self._scan_slots = asyncio.Semaphore(MAX_SCANS)
        # scan -> its stop event: set, never cancelled (the module docstring says why).
        self._scans: dict[asyncio.Task[None], asyncio.Event] = {}
        # job id -> where its history starts, for look-ups waiting to be answered by a scan;
        # ``_history_left`` resolves (and is replaced) whenever one leaves.
        self._history: dict[str, float] = {}
        self._history_left: asyncio.Future[None] | None = None
        self.scans_started = 0
        """Look-ups the cache could not vouch for, which read the stream's history."""

    async def start(self) -> None:
        """Starts the tail; on a node whose stream member is not running yet, keeps trying in
        the background from the same point in time (``wait_for`` meanwhile waits as usual)."""
        start_at = time.time() - self._lookback
        try:
            self._tail = await self._subscribe(start_at, self._on_tail_record)
        except StreamNotReadableError as exc:
            log.warning("results stream not readable here yet (%s); retrying", exc)
            self._tail_opener = asyncio.create_task(self._open_tail(start_at))
        self._complete_since = start_at

    async def _open_tail(self, start_at: float) -> None:
        while True:
            await asyncio.sleep(TAIL_RETRY_SECONDS)
            try:
                self._tail = await self._subscribe(start_at, self._on_tail_record)
            except StreamNotReadableError:
                continue
            except Exception as exc:  # the connection fails over: try again there
                log.debug("results tail not opened: %s", type(exc).__name__)
                continue
            log.info("results stream readable again; tail started")
            return

    async def stop(self) -> None:
        for futures in self._waiters.values():
            for future in futures:
                future.cancel()
        self._waiters.clear()
        self._history.clear()
        self._notify_history_left()
        if self._tail_opener is not None:
            self._tail_opener.cancel()
            await asyncio.gather(self._tail_opener, return_exceptions=True)
            self._tail_opener = None
        if self._scans:
            for stop_scan in self._scans.values():
                stop_scan.set()
            _, stuck = await asyncio.wait(list(self._scans), timeout=SCAN_STOP_SECONDS)
            for scan in stuck:  # the connection is going away: nothing left to protect
                log.warning("a results scan did not stop within %s s", SCAN_STOP_SECONDS)
                scan.cancel()
            if stuck:
                await asyncio.gather(*stuck, return_exceptions=True)
        if self._tail is not None:
            await self._tail.close()
            self._tail = None

    @property
    def cached(self) -> int:
        return len(self._cache)

    def peek(self, job_id: str) -> JobResult | None:
        cached = self._cache.get(job_id)
        result = _decode_result(cached[0]) if cached is not None else None
        return result if result is not None and result.status.is_terminal else None

    def progress(self, job_id: str) -> JobResult | None:
        """The newest non-terminal marker of a job this reader has seen (``processing``)."""
        seen = self._progress.get(job_id)
        if seen is None:
            return None
        return JobResult(job_id, JobStatus.PROCESSING, timestamp=datetime.fromtimestamp(seen, UTC))

    async def wait_for(
        self, job_id: str, timeout: float, *, wait_for_new: bool = True
    ) -> JobResult | None:
        """The job's terminal result, waiting at most ``timeout`` seconds (0: do not wait).

        With ``wait_for_new=False`` it only looks the job up in the history: it answers as
        soon as the stream up to now has been read, without waiting for a result to come.
        """
        cached = self.peek(job_id)
        if cached is not None or timeout <= 0:
            return cached
        submitted = job_id_time(job_id)
        needs_scan = submitted is None or submitted - CLOCK_SKEW_SECONDS < self._complete_since
        if not needs_scan and not wait_for_new:
            return None  # the cache covers the job's whole history
        future: asyncio.Future[JobResult] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, []).append(future)
        scan: asyncio.Task[None] | None = None
        stop_scan = asyncio.Event()
        if needs_scan:
            since = (submitted or time.time() - 86400 * 365) - CLOCK_SKEW_SECONDS
            self._history[job_id] = since
            self.scans_started += 1
            scan = asyncio.create_task(
                self._scan(job_id, since, self._tail_offset, future, stop_scan)
            )
            self._scans[scan] = stop_scan
            scan.add_done_callback(self._forget_scan)
        try:
            # asyncio.timeout, not wait_for(shield(...)): no extra task and future per call on
            # the client's hot path. The future is this call's own, so cancelling it is safe.
            async with asyncio.timeout(timeout):
                if scan is None or wait_for_new:
                    return await future
                await asyncio.wait((future, scan), return_when=asyncio.FIRST_COMPLETED)
                return future.result() if future.done() else None
        except TimeoutError:
            return None
        finally:
            stop_scan.set()  # a scan still waiting for a turn need not start
            waiters = self._waiters.get(job_id, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiters.pop(job_id, None)
                if self._history.pop(job_id, None) is not None:
                    self._notify_history_left()

    def _notify_history_left(self) -> None:
        if self._history_left is not None:
            self._history_left.set_result(None)
            self._history_left = None

    def _serves(self, since: float) -> bool:
        """Whether a scan from ``since`` can still answer a waiting look-up."""
        return any(start >= since for start in self._history.values())

    def _answer_from_history(self, job_id: str, since: float, body: bytes) -> None:
        """Answers look-ups of ``job_id`` with a record a scan from ``since`` read, when their
        history starts no earlier (the record is then the job's first terminal result)."""
        if self._history.get(job_id, since - 1) < since:
            return
        result = _decode_result(body)
        if result is None or result.job_id != job_id or not result.status.is_terminal:
            return
        del self._history[job_id]
        self._notify_history_left()
        for future in self._waiters.get(job_id, []):
            if not future.done():
                future.set_result(result)

    def _forget_scan(self, scan: asyncio.Task[None]) -> None:
        self._scans.pop(scan, None)

    async def _on_tail_record(
        self,
        job_id: str | None,
        message_type: str | None,
        body: bytes,
        offset: int | None,
        stored: float | None,
    ) -> bool:
        self._tail_offset = offset
        if message_type == PROCESSING_MESSAGE_TYPE and job_id:
            # A processing marker: its id and type are all there is to know; skip the JSON.
            if job_id not in self._cache:
                self._remember_progress(job_id)
            return False
        waiters = self._waiters.get(job_id) if job_id else None
        result: JobResult | None = None
        if waiters or not job_id:
            result = _decode_result(body)
            if result is None:
                return False
            job_id = result.job_id
            if not result.status.is_terminal:
                if job_id not in self._cache:
                    self._remember_progress(job_id)
                return False
        if job_id in self._cache:
            return False  # the first terminal result wins (module docstring)
        self._progress.pop(job_id, None)
        self._remember(job_id, body, stored)
        if result is not None:
            for future in self._waiters.pop(job_id, []):
                if not future.done():
                    future.set_result(result)
        return False

    def _remember(self, job_id: str, body: bytes, stored: float | None) -> None:
        # When the broker stored the result; where the protocol does not say, when it arrived
        # (later, so look-ups scan more often than they need to, never less).
        self._cache[job_id] = (body, time.time() if stored is None else stored)
        self._cache.move_to_end(job_id)
        while len(self._cache) > self._cache_size:
            _, (_, stored_at) = self._cache.popitem(last=False)
            # Results stored before the evicted one may be gone from the cache too: later
            # look-ups for jobs submitted before it was stored must scan the stream. Jobs
            # submitted after it have their results later in the stream, so still cached.
            # Its arrival time would be as safe, but a reader that starts by reading a busy
            # minute of history would then scan for every job of its first seconds.
            self._complete_since = max(self._complete_since, stored_at)

    def _remember_progress(self, job_id: str) -> None:
        self._progress[job_id] = time.time()
        self._progress.move_to_end(job_id)
        while len(self._progress) > self._cache_size:
            self._progress.popitem(last=False)

    async def _scan(
        self,
        job_id: str,
        since: float,
        until_offset: int | None,
        future: asyncio.Future[JobResult],
        stop: asyncio.Event,
    ) -> None:
        """Reads the stream from ``since`` while a look-up it can answer waits (``job_id``'s
        or a later one's), until ``until_offset`` (without one, the tail has seen nothing yet)."""
        async with self._scan_slots:
            if stop.is_set() or future.done():
                return
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            read = 0

            async def on_record(
                message_id: str | None,
                _type: str | None,
                body: bytes,
                offset: int | None,
                _stored: float | None,
            ) -> bool:
                nonlocal read
                if done.done():
                    return True
                read += 1
                if message_id is None:  # a writer that set no message id: ask the body
                    decoded = _decode_result(body)
                    message_id = decoded.job_id if decoded is not None else None
                if answered := message_id in self._history:  # None never is
                    self._answer_from_history(message_id, since, body)
                if until_offset is not None and offset is not None and offset >= until_offset:
                    done.set_result(None)  # caught up: the tail has everything after this
                    return True
                if (answered or read % TAIL_ACK_EVERY == 0) and not self._serves(since):
                    done.set_result(None)  # nobody left to answer
                    return True
                return False

            try:
                subscription = await self._subscribe(since, on_record)
            except Exception as exc:  # no connection: the caller's timeout answers
                log.debug("result scan not started: %s", type(exc).__name__)
                return
            try:
                while not done.done() and self._serves(since):
                    if self._history_left is None:
                        self._history_left = asyncio.get_running_loop().create_future()
                    await asyncio.wait(
                        (done, self._history_left), return_when=asyncio.FIRST_COMPLETED
                    )
            finally:
                if not done.done():
                    done.set_result(None)
                await subscription.close()
