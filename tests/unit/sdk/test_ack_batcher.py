"""The ack batcher against a model of the broker's unacked window (no broker, randomised).

The model answers each frame as RabbitMQ does: an ack (single or ``multiple``) or nack of a tag
that is not outstanding is a channel error (``PRECONDITION_FAILED - unknown delivery tag``),
which on a real broker redelivers every unacked job of the channel. Frames reach the model in
the order the client writes them, and writing one takes a few loop iterations (aiormq queues
the frame, then awaits the socket drain), so frames of different flushes can interleave
exactly as they do on a busy worker.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

from itl_controlplane_sdk.workers.acks import AckBatcher


@dataclass(eq=False)
class ModelChannel:
    """A channel as the broker sees it: outstanding tags and every settlement."""

    rng: random.Random
    is_closed: bool = False
    outstanding: set[int] = field(default_factory=set)
    settled: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def settle(self, tag: int, *, multiple: bool, what: str) -> None:
        if tag not in self.outstanding:
            self.errors.append(f"{what} of unknown delivery tag {tag} (multiple={multiple})")
            return
        covered = {t for t in self.outstanding if t <= tag} if multiple else {tag}
        self.outstanding -= covered
        self.settled.update(covered)

    async def drain(self) -> None:
        for _ in range(self.rng.randint(0, 3)):
            await asyncio.sleep(0)

    async def basic_ack(self, delivery_tag: int, multiple: bool = False, wait: bool = True) -> None:
        self.settle(delivery_tag, multiple=multiple, what="ack")
        if wait:
            await self.drain()

    async def basic_nack(self, delivery_tag: int, requeue: bool = True) -> None:
        await self.drain()  # whatever the client does before the frame is queued
        self.settle(delivery_tag, multiple=False, what="nack")
        await self.drain()


@dataclass(eq=False)
class ModelMessage:
    channel: ModelChannel
    delivery_tag: int


async def run_jobs(
    seed: int, *, jobs: int, concurrency: int, requeue_share: float = 0.0
) -> ModelChannel:
    """A worker's life: deliveries in tag order, jobs of random length, acks through the batcher."""
    rng = random.Random(seed)
    channel = ModelChannel(rng)
    batcher = AckBatcher()
    slots = asyncio.Semaphore(concurrency)

    async def job(message: ModelMessage) -> None:
        try:
            for _ in range(rng.choice((0, 0, 1, 2, 5, 20))):
                await asyncio.sleep(0)
            if rng.random() < requeue_share:
                await batcher.nack(message, requeue=True)  # type: ignore[arg-type]
            else:
                batcher.ack(message)  # type: ignore[arg-type]
        finally:
            slots.release()

    tasks = []
    for tag in range(1, jobs + 1):
        await slots.acquire()  # prefetch: the broker sends at most `concurrency` unacked
        channel.outstanding.add(tag)
        message = ModelMessage(channel, tag)
        batcher.track(message)  # type: ignore[arg-type]
        tasks.append(asyncio.create_task(job(message)))
        if rng.random() < 0.5:
            await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    await batcher.wait_sent()
    return channel


def check_each_tag_settled_once(channel: ModelChannel, jobs: int) -> None:
    assert channel.errors == []
    assert channel.outstanding == set()
    assert channel.settled == Counter(range(1, jobs + 1))
    assert set(channel.settled.values()) == {1}


async def test_acks_of_overlapping_flushes_never_settle_a_tag_twice() -> None:
    for seed in range(40):
        channel = await run_jobs(
            seed, jobs=600, concurrency=random.Random(seed).choice((2, 50, 200))
        )
        check_each_tag_settled_once(channel, 600)


async def test_requeued_deliveries_are_never_covered_by_a_multiple_ack() -> None:
    for seed in range(40):
        channel = await run_jobs(seed, jobs=400, concurrency=50, requeue_share=0.1)
        check_each_tag_settled_once(channel, 400)
