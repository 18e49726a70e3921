"""Coalesced acks on a real broker: finished jobs are settled, running ones are not."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from itl_controlplane_sdk import ResourceRequest, ResourceResponse
from itl_controlplane_sdk.workers import JobQueue
from itl_controlplane_sdk.workers.acks import AckBatcher
from tests.integration.sdk.conftest import StartWorker
from tests.integration.sdk.test_delivery import RecordingProvider, recorder_request

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


class CountingProvider(RecordingProvider):
    """Counts how often each job (by resource name) ran."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: Counter[str] = Counter()

    async def create_or_update_resource(self, request: ResourceRequest) -> ResourceResponse:
        self.runs[request.resource_name] += 1
        return await super().create_or_update_resource(request)


@pytest.mark.parametrize(
    ("concurrency", "jobs", "longest"),
    [(200, 1500, 1.0), (50, 3000, 0.0), (1, 200, 0.01)],
    ids=["200-slots-jobs-up-to-1s", "50-slots-no-op-jobs", "1-slot"],
)
async def test_no_job_runs_twice_without_faults(
    producer: JobQueue, start_worker: StartWorker, concurrency: int, jobs: int, longest: float
) -> None:
    """Every tag acked exactly once: a double ack closes the channel and reruns its jobs."""
    provider = CountingProvider()
    worker = await start_worker(
        providers=(("ITL.Test", "Recorder", provider),), max_concurrent_jobs=concurrency
    )
    rng = random.Random(concurrency)
    names = [f"job-{n}" for n in range(jobs)]
    for chunk in range(
        0, jobs, 25
    ):  # small batches: submits stay within their timeout on a busy machine
        await asyncio.gather(
            *(
                producer.submit_job(
                    "ITL.Test",
                    "Recorder",
                    "create",
                    recorder_request(name, seconds=rng.random() * longest),
                )
                for name in names[chunk : chunk + 25]
            )
        )
    deadline = time.monotonic() + 120
    while len(provider.runs) < jobs and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert len(provider.runs) == jobs
    # Redeliveries after a channel error come within moments; wait for a quiet worker.
    while (worker.in_flight or worker.job_queue.in_flight) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    duplicates = {name: runs for name, runs in provider.runs.items() if runs > 1}
    assert duplicates == {}
    stats = await producer.get_queue_stats([producer.queue_name])
    assert stats["queues"][producer.queue_name]["message_count"] == 0
