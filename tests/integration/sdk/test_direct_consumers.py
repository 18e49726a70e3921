"""Job queues consumed through aiormq directly keep being consumed across failures.

aio-pika restores its own consumers when a robust channel reopens or the broker cancels
them; ``DirectConsumers`` is not one of them and must do it itself, or a worker would stay
connected and idle while its queue fills.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aiormq.abc import DeliveredMessage

from itl_controlplane_sdk.workers.deliveries import DirectConsumers

pytestmark = pytest.mark.integration


class Received:
    """Bodies delivered to the consumers (acked at once), and which queue's rank they had."""

    def __init__(self) -> None:
        self.bodies: list[tuple[bytes, int]] = []

    async def __call__(self, message: DeliveredMessage, rank: int) -> None:
        self.bodies.append((message.body, rank))
        assert message.delivery_tag is not None
        await message.channel.basic_ack(message.delivery_tag)

    async def wait_for(self, body: bytes, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for seen, rank in self.bodies:
                if seen == body:
                    return rank
            await asyncio.sleep(0.05)
        raise AssertionError(f"{body!r} was not delivered within {timeout}s: {self.bodies}")


@pytest.fixture
async def connection(rabbitmq_url: str) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(rabbitmq_url)
    async with connection:
        yield connection


@dataclass
class Consumed:
    names: list[str]
    received: Received
    channel: AbstractRobustChannel
    consumers: DirectConsumers


@contextlib.asynccontextmanager
async def consumed(
    connection: AbstractRobustConnection, rabbitmq_url: str, *bands: str
) -> AsyncIterator[Consumed]:
    """Fresh queues (one per band, or one), consumed by ``DirectConsumers``; deleted after."""
    prefix = f"test.direct.{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}.{band}" for band in bands] or [prefix]
    received = Received()
    channel = await connection.channel()
    assert isinstance(channel, AbstractRobustChannel)
    for name in names:
        await channel.declare_queue(name, auto_delete=False)
    consumers = DirectConsumers(channel, names, received)
    await consumers.start()
    try:
        yield Consumed(names, received, channel, consumers)
    finally:
        await consumers.cancel()
        await _delete(rabbitmq_url, *names)


async def _publish(connection: AbstractRobustConnection, queue: str, body: bytes) -> None:
    channel = await connection.channel()
    try:
        await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)
    finally:
        await channel.close()


async def _delete(rabbitmq_url: str, *names: str) -> None:
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)


async def test_each_queue_delivers_with_its_rank(
    connection: AbstractRobustConnection, rabbitmq_url: str
) -> None:
    async with consumed(connection, rabbitmq_url, "high", "low") as queues:
        assert queues.consumers.consuming == 2
        await _publish(connection, queues.names[1], b"low")
        await _publish(connection, queues.names[0], b"high")
        assert await queues.received.wait_for(b"low") == 1
        assert await queues.received.wait_for(b"high") == 0


async def test_consumers_come_back_after_the_broker_closes_their_channel(
    connection: AbstractRobustConnection, rabbitmq_url: str
) -> None:
    async with consumed(connection, rabbitmq_url) as queues:
        underlay = await queues.channel.get_underlay_channel()
        # An ack of a tag never delivered is a channel error: the broker closes the channel
        # (PRECONDITION_FAILED) and the robust channel opens a new one.
        await underlay.basic_ack(999_999)
        deadline = time.monotonic() + 15
        while not underlay.is_closed and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert underlay.is_closed
        await _publish(connection, queues.names[0], b"after the channel error")
        await queues.received.wait_for(b"after the channel error")
        assert await queues.channel.get_underlay_channel() is not underlay
        assert queues.consumers.consuming == 1


async def test_a_queue_deleted_under_its_consumer_is_declared_and_consumed_again(
    connection: AbstractRobustConnection, rabbitmq_url: str
) -> None:
    async with consumed(connection, rabbitmq_url) as queues:
        await _delete(rabbitmq_url, *queues.names)  # the broker cancels the consumer
        deadline = time.monotonic() + 15
        while not any(body == b"after the delete" for body, _ in queues.received.bodies):
            assert time.monotonic() < deadline, "the queue was not consumed again within 15s"
            # Dropped while the queue is gone, taken once aio-pika has declared it again.
            await _publish(connection, queues.names[0], b"after the delete")
            await asyncio.sleep(0.2)
        assert queues.consumers.consuming == 1


async def test_cancel_stops_deliveries(
    connection: AbstractRobustConnection, rabbitmq_url: str
) -> None:
    async with consumed(connection, rabbitmq_url) as queues:
        await queues.consumers.cancel()
        assert queues.consumers.consuming == 0
        await _publish(connection, queues.names[0], b"nobody takes it")
        probe = await connection.channel()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            queue = await probe.declare_queue(queues.names[0], passive=True)
            if queue.declaration_result.message_count == 1:
                break
            await asyncio.sleep(0.05)
        assert queue.declaration_result.message_count == 1
        assert queue.declaration_result.consumer_count == 0
        assert queues.received.bodies == []
        await probe.close()
