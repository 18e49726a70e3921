"""Replicated mode on the 3-node cluster: priority bands, depth summed, DLQ reasons."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aio_pika

from itl_controlplane_sdk.workers import JobQueue, JobResult, JobStatus
from tests.support.cluster import RabbitMQCluster
from tests.support.requests import demo_request


async def test_depth_is_summed_across_the_bands(
    cluster_job_queue: Callable[..., Any], cluster_queue: str
) -> None:
    producer: JobQueue = await cluster_job_queue(1)
    for index, priority in enumerate([1, 5, 9, 0, 6, 10, 3, 4, 7] * 2):
        await producer.submit_job("ITL.Demo", "Job", "create", demo_request(f"j{index}"), priority)

    entry = (await producer.get_queue_stats())["queues"][cluster_queue]

    assert entry["message_count"] == 18
    assert entry["bands"] == {
        f"{cluster_queue}.high": 6,
        cluster_queue: 6,
        f"{cluster_queue}.low": 6,
    }


async def test_high_priority_jobs_do_not_wait_behind_a_low_priority_backlog(
    cluster_job_queue: Callable[..., Any],
) -> None:
    producer: JobQueue = await cluster_job_queue(1)
    started: list[str] = []
    finished = asyncio.Event()

    async def run(job_id: str, payload: dict[str, Any]) -> JobResult:
        started.append(str(payload["request"]["resource_name"]))
        await asyncio.sleep(0.1)
        if len(started) == 18:
            finished.set()
        return JobResult(job_id, JobStatus.COMPLETED)

    consumer: JobQueue = await cluster_job_queue(2)
    await consumer.consume_jobs(run, prefetch=1)
    for index in range(15):
        await producer.submit_job("ITL.Demo", "Job", "create", demo_request(f"low-{index}"), 1)
    deadline = time.monotonic() + 20
    while len(started) < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    for index in range(3):
        await producer.submit_job("ITL.Demo", "Job", "create", demo_request(f"high-{index}"), 9)
    await asyncio.wait_for(finished.wait(), 60)

    # The high jobs take the next free slots: at most the low jobs already running or held
    # (one slot plus one lookahead) start before them, not the backlog of fifteen.
    positions = [started.index(f"high-{index}") for index in range(3)]
    assert max(positions) <= 7, started
    lows = [name for name in started if name.startswith("low-")]
    assert lows == [f"low-{index}" for index in range(15)], "a band runs in arrival order"


async def test_a_job_redelivered_past_the_delivery_limit_reaches_the_dlq_with_the_reason(
    rabbitmq_cluster: RabbitMQCluster, cluster_job_queue: Callable[..., Any], cluster_queue: str
) -> None:
    producer: JobQueue = await cluster_job_queue(1)
    job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request("poison"), 5)

    # A consumer that gives the job back every time, as workers that crash on it would.
    connection = await aio_pika.connect(rabbitmq_cluster.url(2))
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(cluster_queue, passive=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = await queue.get(fail=False)
            if message is None:
                if (await producer.get_queue_stats())["queues"][cluster_queue]["message_count"]:
                    continue
                break
            await message.nack(requeue=True)

    deadline = time.monotonic() + 30
    found: list[dict[str, Any]] = []
    while not found and time.monotonic() < deadline:
        found = [m for m in await producer.get_dlq_messages(1000) if m["job_id"] == job_id]
        await asyncio.sleep(0.2)
    assert found, "the job never reached the DLQ"
    assert found[0]["reason"].startswith(f"delivery limit reached in {cluster_queue}")
    assert found[0]["queue"] == cluster_queue
