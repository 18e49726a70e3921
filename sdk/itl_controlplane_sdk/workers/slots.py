"""Job slots shared by the priority bands of a replicated pool queue.

A worker consumes each band (``contract.replication``) with its own AMQP consumer, so the broker
may hand it jobs of several bands at once. ``PrioritySlots`` runs at most ``capacity`` of them
(the worker's MAX_CONCURRENT_JOBS) and gives a freed slot to the waiting job of the highest band;
jobs of one band get slots in arrival order.
"""

from __future__ import annotations

import asyncio
from collections import deque


class PrioritySlots:
    """A semaphore whose waiters are served by rank (0 first), FIFO within a rank."""

    def __init__(self, capacity: int, ranks: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._free = capacity
        self._waiting: list[deque[asyncio.Future[None]]] = [deque() for _ in range(ranks)]

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting)

    async def acquire(self, rank: int) -> None:
        if self._free > 0:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[rank].append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted and cancelled at once: pass the slot on
            else:
                self._waiting[rank].remove(future)
            raise

    def release(self) -> None:
        for queue in self._waiting:
            while queue:
                future = queue.popleft()
                if not future.done():
                    future.set_result(None)
                    return
        self._free += 1
