"""Queue statistics read by many callers at once (the operator's autoscaler polling pools)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest

from itl_controlplane_sdk.workers import JobQueue

pytestmark = pytest.mark.integration


@pytest.fixture
async def queues(rabbitmq_url: str) -> AsyncIterator[dict[str, int]]:
    """Twenty queues, the i-th holding i messages."""
    prefix = f"test.stats.{uuid.uuid4().hex[:8]}"
    depths = {f"{prefix}.{i}": i for i in range(20)}
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        for name, depth in depths.items():
            await channel.declare_queue(name)
            for _ in range(depth):
                await channel.default_exchange.publish(aio_pika.Message(b"x"), routing_key=name)
        yield depths
        for name in depths:
            await channel.queue_delete(name)


@pytest.fixture
async def reader(rabbitmq_url: str) -> AsyncIterator[JobQueue]:
    queue = JobQueue(
        rabbitmq_url, queue_name="stats-reader", declare_topology=False, stats_channels=4
    )
    await queue.connect()
    yield queue
    await queue.disconnect()


async def test_concurrent_reads_each_get_their_own_queues_numbers(
    reader: JobQueue, queues: dict[str, int]
) -> None:
    names = [*queues, "no.such.queue"] * 5

    results = await asyncio.gather(*(reader.get_queue_stats([name]) for name in names))

    for name, stats in zip(names, results, strict=True):
        assert stats["connected"] is True
        entry = stats["queues"][name]
        if name == "no.such.queue":
            # A missing queue closes its channel; reads in flight on the others are unharmed.
            assert entry["exists"] is False
        else:
            assert (entry["exists"], entry["message_count"]) == (True, queues[name])


async def test_callers_that_give_up_leave_the_next_reads_working(
    reader: JobQueue, queues: dict[str, int]
) -> None:
    """A timed-out caller must not cancel the declare mid-flight: aio-pika would close the
    channel under the reads queued behind it, which then fail with ChannelClosed.

    The timeouts sweep 0.3-12 ms so that some land on each step of a read (waiting for a
    channel, opening one, the declare itself), whatever the machine's speed."""
    for step in range(1, 41):
        reads = [asyncio.wait_for(reader.get_queue_stats([n]), 0.0003 * step) for n in queues]
        await asyncio.gather(*reads, return_exceptions=True)

        stats = await asyncio.gather(*(reader.get_queue_stats([n]) for n in queues))

        errors = [s.get("error") for s in stats if not s["connected"]]
        assert errors == [], f"after callers gave up at {0.3 * step:.1f} ms"
        depths = [s["queues"][n]["message_count"] for s, n in zip(stats, queues, strict=True)]
        assert depths == list(queues.values())


async def test_reading_a_missing_queue_again_and_again_leaks_no_channel(reader: JobQueue) -> None:
    """The broker closes a channel that declares a missing queue. aio-pika's robust
    channels reopen themselves after that, so replacing one leaked a channel per read, until
    the connection ran out of channels (an autoscaler polling a pool whose queue is gone)."""

    def open_channels() -> int:
        # The AMQP client's own table of the connection's channels (aiormq).
        assert reader._connection is not None
        table = reader._connection.transport.connection.channels
        return sum(1 for channel in table.values() if not channel.is_closed)

    before = open_channels()
    for _ in range(30):
        stats = await reader.get_queue_stats(["no.such.queue"])
        assert stats["queues"]["no.such.queue"]["exists"] is False
    await asyncio.gather(*(reader.get_queue_stats(["no.such.queue"]) for _ in range(30)))
    await asyncio.sleep(0.5)  # a robust channel reopens itself right after its close

    assert open_channels() <= before + 4  # at most the reader's four stats channels
