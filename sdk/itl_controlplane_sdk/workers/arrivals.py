"""Arrival signals: notice the first job sent to a pool whose queue nobody consumes.

The operator's autoscaler learns a pool's depth by polling, so a job sent to a pool at zero
replicas waits for the next poll. An ``ArrivalWatch`` shortens that wait without more
polling: for each watched pool it declares a small queue bound exactly like the pool's queue
(same exchanges, every band in replicated mode, the same routing keys, or the alternate
exchange for a catch-all queue), so every job routed to the pool is also routed to it, and
consumes it. The first delivery calls the watcher's handler.

What a watch costs, and why it stays small:

- the queue holds at most one ready message (``x-max-length: 1``, ``x-overflow:
  drop-head``), is exclusive and auto-deleted, and is not durable, so a job routed to it
  is never written to disk and the queue goes away with the consumer or the connection;
- the consumer takes one delivery at a time (prefetch 1, acknowledged by ``rearm``), so a
  burst of a thousand jobs into an idle pool sends the watcher one or two messages, not a
  thousand; the broker drops the rest at the head of the capped queue;
- a pool being consumed needs no watch: the caller unwatches it (the queue is deleted) and
  its jobs pay nothing.

All watches of a connection share one channel. A failed declare or bind (no permission, an
exchange that does not exist) closes that channel on the broker's side, and with it every
watch on it; ``watching`` then answers False for all of them and the caller may watch again.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from itl_controlplane_sdk.contract import replication, topology

if TYPE_CHECKING:
    from aio_pika.abc import (
        AbstractChannel,
        AbstractConnection,
        AbstractIncomingMessage,
        AbstractQueue,
    )

log = logging.getLogger(__name__)

ARRIVAL_QUEUE_ARGUMENTS: dict[str, int | str] = {"x-max-length": 1, "x-overflow": "drop-head"}


@dataclass
class _Watch:
    channel: AbstractChannel
    queue: AbstractQueue
    consumer_tag: str = ""
    held: AbstractIncomingMessage | None = None


class ArrivalWatch:
    """Capped arrival queues on one connection, one per watched pool (``key``)."""

    def __init__(self, connection: AbstractConnection) -> None:
        self._connection = connection
        self._channel: AbstractChannel | None = None
        self._watches: dict[str, _Watch] = {}

    def watching(self, key: str) -> bool:
        """Whether ``key`` has a live arrival queue (its channel was not closed)."""
        watch = self._watches.get(key)
        return watch is not None and not watch.channel.is_closed

    async def watch(
        self,
        key: str,
        *,
        bindings: Sequence[str],
        on_arrival: Callable[[], None],
        queue_type: replication.QueueType = "classic",
    ) -> None:
        """Route a copy of every job of the pool queue bound by ``bindings`` to a capped
        queue and call ``on_arrival`` at its first delivery. Raises what the broker refused.

        Watch only a pool whose queue exists: while the arrival queue is bound, a job the
        pool's queue does not take is routed to it alone, not to the alternate exchange.
        """
        if self.watching(key):
            return
        self._watches.pop(key, None)
        channel = await self._open_channel()
        queue = await channel.declare_queue(
            f"{topology.ARRIVAL_WATCH_PREFIX}{uuid.uuid4().hex}",
            exclusive=True,
            auto_delete=True,
            arguments=dict(ARRIVAL_QUEUE_ARGUMENTS),
        )
        for band in replication.bands(queue_type):
            for exchange, routing_key in band.routes(bindings):
                await queue.bind(exchange, routing_key=routing_key)
        watch = _Watch(channel, queue)

        async def arrived(message: AbstractIncomingMessage) -> None:
            watch.held = message
            on_arrival()

        watch.consumer_tag = await queue.consume(arrived)
        self._watches[key] = watch

    async def rearm(self, key: str) -> None:
        """Let the next job signal again (acknowledge the delivery that signalled)."""
        watch = self._watches.get(key)
        if watch is None or watch.held is None:
            return
        message, watch.held = watch.held, None
        # A delivery from before a reconnect belongs to a channel that is gone: nothing to ack.
        with contextlib.suppress(Exception):
            await message.ack()

    async def unwatch(self, key: str) -> None:
        """Drop the pool's arrival queue: cancelling its one consumer deletes it (auto-delete),
        with the message it held."""
        watch = self._watches.pop(key, None)
        if watch is None or watch.channel.is_closed:
            return
        await watch.queue.cancel(watch.consumer_tag)

    async def stop(self) -> None:
        self._watches.clear()
        if self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.close()
            self._channel = None

    async def _open_channel(self) -> AbstractChannel:
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel(publisher_confirms=False)
            await self._channel.set_qos(prefetch_count=1)
        return self._channel
