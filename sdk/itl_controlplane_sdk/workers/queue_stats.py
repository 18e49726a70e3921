"""Queue depth by passive ``queue.declare``, over a few reused channels of one connection.

Why several channels: AMQP answers a channel's synchronous methods one at a time, so one
channel makes the reads strictly sequential and their rate is one per round trip. The
operator's autoscaler reads hundreds of queues a second (1000 pools every 2 s): on a loaded
machine a round trip took 6 ms, which capped one channel at about 170 reads a second. Up to
``size`` channels run that many reads at once; a channel is opened only when that many
reads are waiting at the same time, so a client that reads now and then keeps one.

Why a read is shielded: a caller that gives up (``asyncio.wait_for``) would otherwise cancel
the declare mid-flight, which makes aio-pika close the channel, and a channel open that is
cancelled before it was sent makes RabbitMQ close the whole connection (``CHANNEL_ERROR -
expected 'channel.open'``). The read finishes in the background instead and returns its
channel for the next one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aio_pika import Channel
from aio_pika.abc import AbstractChannel, AbstractConnection
from aio_pika.exceptions import ChannelNotFoundEntity


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a shielded read's error as seen: its caller may have stopped waiting for it."""
    if not task.cancelled():
        task.exception()


class StatsChannels:
    """At most ``size`` channels for passive declares, each serving one read at a time."""

    def __init__(self, size: int, timeout: float) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, not {size}")
        self._timeout = timeout
        # Last in, first out: the channel used last (open) is reused first, and the empty
        # slots (None) are only reached when that many reads wait at once.
        self._free: asyncio.LifoQueue[AbstractChannel | None] = asyncio.LifoQueue()
        for _ in range(size):
            self._free.put_nowait(None)

    async def read(self, connection: AbstractConnection, name: str) -> dict[str, Any]:
        """Depth and consumers of queue ``name``, or ``exists: False`` when it is missing."""
        task = asyncio.ensure_future(self._read(connection, name))
        task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    async def _read(self, connection: AbstractConnection, name: str) -> dict[str, Any]:
        channel = await self._free.get()
        try:
            if channel is None or channel.is_closed:
                # A plain channel, not the robust kind ``connection.channel()`` gives: that
                # one reopens itself after the broker closes it for a missing queue, so
                # replacing it leaked a channel per missing queue read. A plain one stays
                # closed (and after a reconnect is simply replaced here).
                channel = Channel(connection, publisher_confirms=False)
                await channel.initialize(timeout=self._timeout)
            # The AMQP method itself: aio-pika's robust channel answers a passive declare
            # of a queue it has seen from its cache, with the counts of that first time.
            amqp_channel = await channel.get_underlay_channel()
            declared = await amqp_channel.queue_declare(name, passive=True, timeout=self._timeout)
        except ChannelNotFoundEntity:
            channel = None  # the broker closed it; the next read opens another
            return {
                "exists": False,
                "message_count": None,
                "consumer_count": None,
                "error": f"queue {name!r} not found",
            }
        finally:
            self._free.put_nowait(channel)
        return {
            "exists": True,
            "message_count": declared.message_count,
            "consumer_count": declared.consumer_count,
        }
