"""Consuming job queues through aiormq directly, and keeping them consumed.

aio-pika hands a consumer each delivery as an ``IncomingMessage``, built with some thirty
attribute writes (each checked against the message's lock) and its header properties
converted, and runs the callback in a second task of its own: together 15-30 µs per job on
these machines, the largest single part of what the worker's own code spends per job
(docs/performance.md, "The worker's deliveries without aio-pika's message objects"). A job
consumer needs none of it: the body, a few properties and the delivery tag, all on the frame
aiormq already decoded. ``DirectConsumers`` registers ``basic.consume`` on the aiormq channel
under an aio-pika robust channel instead, so the callback gets aiormq's ``DeliveredMessage``
in the task aiormq runs it in.

aio-pika's robust queues keep their own consumers going across failures; these consumers
are not theirs, so this class does the same for them:

- after the robust channel reopens (a reconnect, a failover to another node) it consumes
  every queue again on the new channel, once aio-pika has declared the queues there again;
- when the broker cancels a consumer (its queue deleted, or a replica lost) it consumes that
  queue again;
- a consume that fails (a queue not back yet after a node restart) is retried with back-off
  until it succeeds or ``cancel`` is called: never given up, so a worker whose queue comes
  back takes jobs again without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from aio_pika.abc import AbstractRobustChannel
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from aiormq.abc import AbstractChannel, DeliveredMessage
from pamqp import commands

log = logging.getLogger(__name__)

OnDelivery = Callable[[DeliveredMessage, int], Coroutine[Any, Any, None]]
"""Called with each delivery and the rank of its queue (0 for the first queue given)."""

FIRST_RETRY_SECONDS = 0.2
MAX_RETRY_SECONDS = 5.0
CONSUME_ERRORS = (AMQPError, ConnectionError, ChannelInvalidStateError, TimeoutError)


class DirectConsumers:
    """One consumer per queue on a robust channel, kept consuming until ``cancel``."""

    def __init__(
        self, channel: AbstractRobustChannel, queues: Sequence[str], on_delivery: OnDelivery
    ) -> None:
        self._channel = channel
        self._queues = list(queues)
        self._on_delivery = on_delivery
        self._consuming_on: AbstractChannel | None = None
        self._queue_of: dict[str, str] = {}  # consumer tag -> queue, on ``_consuming_on``
        self._recovery: asyncio.Task[None] | None = None
        self._recoveries_asked = 0
        self._cancelled = False

    def queue_of(self, message: DeliveredMessage) -> str | None:
        """The queue a delivery came from (its consumer's), or None if no longer known."""
        consumer_tag = getattr(message.delivery, "consumer_tag", None)
        return self._queue_of.get(consumer_tag) if consumer_tag else None

    @property
    def consuming(self) -> int:
        """Queues consumed now, on the channel's current aiormq channel."""
        return len(self._queue_of)

    async def start(self) -> None:
        """Consumes every queue; raises what the broker refused the first time."""
        self._channel.reopen_callbacks.add(self._on_reopen)
        await self._consume_missing()

    async def cancel(self) -> None:
        """Stops consuming: no new deliveries (those in flight stay the caller's)."""
        self._cancelled = True
        self._channel.reopen_callbacks.discard(self._on_reopen)
        if self._recovery is not None:
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)
        channel, self._consuming_on = self._consuming_on, None
        tags, self._queue_of = list(self._queue_of), {}
        if channel is None or channel.is_closed:
            return
        for tag in tags:
            try:
                await channel.basic_cancel(tag)
            except CONSUME_ERRORS:
                log.warning("could not cancel the consumer cleanly; closing the channel instead")

    async def _consume_missing(self) -> None:
        channel = await self._channel.get_underlay_channel()
        if channel is not self._consuming_on:
            # A new aiormq channel under the robust one: the old tags mean nothing on it.
            self._consuming_on = channel
            self._queue_of = {}
            channel.on_consumer_cancel_callbacks.add(self._on_broker_cancel)
        consumed = set(self._queue_of.values())
        for rank, queue in enumerate(self._queues):
            if queue in consumed:
                continue
            ok = await channel.basic_consume(queue, self._callback(rank), no_ack=False)
            assert ok.consumer_tag is not None
            if self._cancelled:  # cancel ran while the broker answered
                with contextlib.suppress(*CONSUME_ERRORS):
                    await channel.basic_cancel(ok.consumer_tag)
                return
            self._queue_of[ok.consumer_tag] = queue

    def _callback(self, rank: int) -> Callable[[DeliveredMessage], Coroutine[Any, Any, None]]:
        on_delivery = self._on_delivery
        return lambda message: on_delivery(message, rank)

    async def _keep_consuming(self) -> None:
        delay = FIRST_RETRY_SECONDS
        while not self._cancelled:
            asked = self._recoveries_asked
            try:
                await self._consume_missing()
            except CONSUME_ERRORS as exc:
                log.warning(
                    "could not consume the job queues (%s: %s); trying again in %.1fs",
                    type(exc).__name__,
                    exc,
                    delay,
                )
            else:
                if asked == self._recoveries_asked:
                    return
                continue  # the channel reopened again meanwhile: consume on the new one
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_SECONDS)

    def _recover(self) -> None:
        self._recoveries_asked += 1
        if self._cancelled or (self._recovery is not None and not self._recovery.done()):
            return
        self._recovery = asyncio.get_running_loop().create_task(self._keep_consuming())

    def _on_reopen(self, *_: Any) -> None:
        self._recover()

    def _on_broker_cancel(self, frame: commands.Basic.Cancel) -> None:
        queue = self._queue_of.pop(frame.consumer_tag or "", None)
        if queue is not None:
            log.warning("the broker cancelled the consumer of %s; consuming it again", queue)
            self._recover()
