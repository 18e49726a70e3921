"""A job the broker nacks is held and published again on a new channel, up to publish_timeout.

A RabbitMQ 3.10 channel can nack every publish to a quorum queue for minutes after a node
stops (``JobQueue._publish_job``); that needs a cluster and a race to show. Here the broker
nacks for a reason the test controls: a second queue bound to the job's routing key is full and
rejects new messages (``x-overflow: reject-publish``). Its routing key is the test's own, so no
other job on the shared broker reaches it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest

from itl_controlplane_sdk import ResourceRequest
from itl_controlplane_sdk.contract import topology
from itl_controlplane_sdk.errors import JobSubmissionError
from itl_controlplane_sdk.workers import JobQueue
from tests.integration.sdk.conftest import ALL_JOBS


def request(namespace: str) -> ResourceRequest:
    return ResourceRequest(
        subscription_id="sub-1",
        resource_group="rg-1",
        provider_namespace=namespace,
        resource_type="Job",
        resource_name="held",
        location="westeurope",
    )


@pytest.fixture
async def full_queue(rabbitmq_url: str, queue_name: str) -> AsyncIterator[tuple[str, str]]:
    """(namespace, queue): a full queue that rejects every job of ``namespace``."""
    namespace = f"ITL.Held{uuid.uuid4().hex[:8]}"
    name = f"{queue_name}.full"
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            name, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
        )
        exchange = await channel.get_exchange(topology.JOB_EXCHANGE)
        await queue.bind(exchange, topology.job_routing_key(namespace, "Job", "create"))
        yield namespace, name
        await channel.queue_delete(name)


async def test_a_nacked_job_is_refused_after_publish_timeout(
    rabbitmq_url: str, queue_name: str, producer: JobQueue, full_queue: tuple[str, str]
) -> None:
    namespace, _ = full_queue
    held = JobQueue(rabbitmq_url, queue_name=queue_name, bindings=ALL_JOBS, publish_timeout=2)
    await held.connect()
    try:
        started = time.monotonic()
        with pytest.raises(JobSubmissionError, match="not confirmed by the broker"):
            await held.submit_job(namespace, "Job", "create", request(namespace))
        waited = time.monotonic() - started
    finally:
        await held.disconnect()
    assert 1.5 <= waited <= 4, f"held {waited:.1f}s instead of about publish_timeout (2 s)"


async def test_a_nacked_job_is_accepted_once_the_broker_takes_it_again(
    rabbitmq_url: str, queue_name: str, producer: JobQueue, full_queue: tuple[str, str]
) -> None:
    namespace, full = full_queue
    submission = asyncio.create_task(
        producer.submit_job(namespace, "Job", "create", request(namespace))
    )
    await asyncio.sleep(1)
    assert not submission.done(), "the nacked job was not held"
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(full)  # the broker stops nacking

    job_id = await asyncio.wait_for(submission, 10)

    stats = await producer.get_queue_stats()
    assert stats["queues"][queue_name]["message_count"] >= 1, f"job {job_id} not in the queue"
