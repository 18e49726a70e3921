"""Coalescing a worker's acknowledgements into ``basic.ack multiple``.

The broker confirms published results in batches, so several jobs of a worker usually finish
in the same event-loop iteration. Acking each one costs a frame, a socket write and a round
of broker work per job; the batcher collects the acks of one iteration instead and sends, per
channel, one ``multiple`` ack for the longest run of finished deliveries at the front of the
channel's unacknowledged window, then single acks for finished deliveries that sit behind one
still running (holding those back would hold prefetch slots, and with them throughput).

An ack is only ever delayed to the end of the iteration, never sent before the caller asked
for it, so "ack after the outcome is recorded" still holds.

Every tag must reach the broker settled exactly once: a second ack (or an ack after a
``multiple`` one covered the tag) is a channel error, and the broker then redelivers every
unacked job of the channel, so jobs run twice without any fault. Two rules keep it so
(tests/unit/sdk/test_ack_batcher.py checks them against a model of the broker's window):

- frames are written in plan order by a single sender, so the ``multiple`` ack of a later
  flush never overtakes a single ack of an earlier one (each write awaits the socket drain,
  and two concurrent senders interleaved their frames);
- a delivery settled by ``nack`` stays in the window, blocking ``multiple`` acks, until its
  nack frame is written.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aiormq.abc import AbstractChannel

log = logging.getLogger(__name__)


class Delivery(Protocol):
    """What the batcher needs of a delivery: aiormq's ``DeliveredMessage`` or aio-pika's
    ``IncomingMessage``."""

    @property
    def channel(self) -> AbstractChannel: ...

    @property
    def delivery_tag(self) -> int | None: ...


AckFrames = list[tuple[int, bool]]
"""(delivery tag, multiple) pairs, in the order they must be sent."""


def plan_acks(unsettled: dict[int, bool]) -> AckFrames:
    """The ack frames for a channel's unsettled deliveries (tag -> finished).

    Pure so it can be tested on its own: the run of finished tags below the oldest unfinished
    one becomes one ack (``multiple`` when it covers more than one), every other finished tag
    its own ack.
    """
    frames: AckFrames = []
    leading = 0
    last_leading: int | None = None
    in_leading_run = True
    for tag, finished in sorted(unsettled.items()):
        if not finished:
            in_leading_run = False
        elif in_leading_run:
            leading += 1
            last_leading = tag
        else:
            frames.append((tag, False))
    if last_leading is not None:
        frames.insert(0, (last_leading, leading > 1))
    return frames


class AckBatcher:
    """Tracks one consumer's unsettled deliveries and sends their acks once per iteration."""

    def __init__(self) -> None:
        # Per AMQP channel: delivery tag -> finished.
        self._unsettled: dict[AbstractChannel, dict[int, bool]] = {}
        self._scheduled = False
        # Planned frames, written strictly in order by one sender task.
        self._frames: deque[tuple[AbstractChannel, int, bool]] = deque()
        self._sender: asyncio.Task[None] | None = None

    def track(self, message: Delivery) -> None:
        """Records a new delivery; call it before the job starts."""
        assert message.delivery_tag is not None
        self._unsettled.setdefault(message.channel, {})[message.delivery_tag] = False

    async def nack(self, message: Delivery, *, requeue: bool) -> None:
        """Settles a delivery by nack (``requeue=False`` dead-letters it through the DLX).

        The tag leaves the window only once the nack frame is written (or failed with the
        channel), so no ``multiple`` ack planned meanwhile can claim it first.
        """
        assert message.delivery_tag is not None
        try:
            await message.channel.basic_nack(message.delivery_tag, requeue=requeue)
        finally:
            tags = self._unsettled.get(message.channel)
            if tags is not None:
                tags.pop(message.delivery_tag, None)

    def ack(self, message: Delivery) -> None:
        """Marks a delivery done; its ack goes out at the end of this loop iteration."""
        assert message.delivery_tag is not None
        if message.channel.is_closed:
            return  # the broker redelivers it; the tag means nothing on a new channel
        self._unsettled.setdefault(message.channel, {})[message.delivery_tag] = True
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def is_open(self, message: Delivery) -> bool:
        """Whether a delivery is tracked and neither acked nor nacked yet."""
        tags = self._unsettled.get(message.channel)
        return tags is not None and tags.get(message.delivery_tag or 0) is False

    @property
    def unsettled(self) -> int:
        """Deliveries not settled yet on live channels (acks not yet written included)."""
        return sum(len(tags) for channel, tags in self._unsettled.items() if not channel.is_closed)

    @property
    def open(self) -> int:
        """Deliveries on live channels that nobody has acked or nacked yet."""
        return sum(
            1
            for channel, tags in self._unsettled.items()
            if not channel.is_closed
            for finished in tags.values()
            if not finished
        )

    async def wait_sent(self) -> None:
        """Sends what is due now and waits until every ack frame has been written."""
        if self._scheduled:
            self._flush()
        if self._sender is not None:
            await asyncio.gather(self._sender, return_exceptions=True)

    def _flush(self) -> None:
        self._scheduled = False
        for channel, tags in list(self._unsettled.items()):
            if channel.is_closed:
                # Deliveries of a closed channel are redelivered by the broker; their tags
                # mean nothing on the channel that replaced it.
                del self._unsettled[channel]
                continue
            frames = plan_acks(tags)
            if not frames:
                continue
            # The frames settle exactly the finished deliveries (tests/unit/sdk/test_ack_plan.py).
            for finished in [tag for tag, done in tags.items() if done]:
                del tags[finished]
            self._frames.extend((channel, tag, multiple) for tag, multiple in frames)
        if self._frames and (self._sender is None or self._sender.done()):
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

        while self._frames:
            channel, tag, multiple = self._frames.popleft()
            if channel.is_closed:
                continue  # redelivered by the broker; see _flush
            try:
                # Only the last frame waits for the socket: the ones before it are queued
                # in order ahead of it, so they are written by then.
                await channel.basic_ack(tag, multiple=multiple, wait=not self._frames)
            except (AMQPError, ConnectionError, ChannelInvalidStateError) as exc:
                # The channel died with the broker: it redelivers these jobs (at-least-once).
                log.warning("could not ack finished jobs (%s); the broker will redeliver them", exc)
