"""Coalesced acks on a real broker: finished jobs are settled, running ones are not."""

from __future__ import annotations

import asyncio
import time
import uuid

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from itl_controlplane_sdk.workers.acks import AckBatcher

pytestmark = pytest.mark.integration


async def test_coalesced_acks_settle_finished_jobs_and_leave_running_ones(
    rabbitmq_url: str,
) -> None:
    name = f"test.acks.{uuid.uuid4().hex[:10]}"
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, auto_delete=False)
        try:
            for n in range(20):
                await channel.default_exchange.publish(
                    aio_pika.Message(str(n).encode()), routing_key=name
                )
            consumer_channel = await connection.channel()
            await consumer_channel.set_qos(prefetch_count=20)
            consumer_queue = await consumer_channel.get_queue(name)
            delivered: list[AbstractIncomingMessage] = []
            batcher = AckBatcher()

            async def on_message(message: AbstractIncomingMessage) -> None:
                batcher.track(message)
                delivered.append(message)

            tag = await consumer_queue.consume(on_message)
            deadline = time.monotonic() + 10
            while len(delivered) < 20 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert len(delivered) == 20
            await consumer_queue.cancel(tag)

            still_running = {delivered[3].body, delivered[11].body}
            for message in delivered:
                if message.body not in still_running:
                    batcher.ack(message)  # all in one loop iteration: coalesced
            await batcher.wait_sent()
            assert batcher.unsettled == 2
            await consumer_channel.close()  # the running jobs' worker dies

            left = await channel.declare_queue(name, passive=True)
            assert left.declaration_result.message_count == 2
            redelivered = set()
            while (message := await queue.get(fail=False)) is not None:
                redelivered.add(message.body)
                await message.ack()
            assert redelivered == still_running
        finally:
            await channel.queue_delete(name)
