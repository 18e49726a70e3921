"""TEST HELPER: declare a pool's queue, publish demo jobs to it, collect their results.

Jobs go straight to the pool's queue through the default exchange, so no other queue on
the shared broker receives a copy; ``publish(..., provider=P)`` sends them through the job
exchange with P's routing key instead, as producers do (what the autoscaler's arrival queue
of an idle pool sees). They are ``ITL.Demo/Job`` jobs (the SDK's example
provider): ``seconds`` says how long each one runs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import aio_pika

from itl_controlplane_sdk import ResourceRequest
from itl_controlplane_sdk.contract.topology import JOB_EXCHANGE, job_routing_key, provider_binding
from itl_controlplane_sdk.workers import JobQueue, amqp
from itl_controlplane_sdk.workers.envelope import JobEnvelope, new_job_id
from itl_controlplane_sdk.workers.results import JobResult


def pool_queue(namespace: str, pool: str) -> str:
    """The queue a pool with ``providers`` consumes (``api.effective_queue``)."""
    return f"provider.jobs.{namespace}.{pool}"


def _job(name: str, seconds: float) -> JobEnvelope:
    """An ``ITL.Demo/Job`` create job that runs ``seconds``."""
    return JobEnvelope(
        job_id=new_job_id(),
        provider_namespace="ITL.Demo",
        resource_type="Job",
        operation="create",
        request=ResourceRequest(
            subscription_id="sub-autoscaler",
            resource_group="rg-autoscaler",
            provider_namespace="ITL.Demo",
            resource_type="Job",
            resource_name=name,
            location="westeurope",
            body={"seconds": seconds},
        ),
    )


async def _declare(url: str, queue: str, provider: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        await amqp.declare_job_topology(connection, queue, (provider_binding(provider),))


def declare(url: str, queue: str, provider: str) -> None:
    """Declare the queue exactly as the pool's workers will (same arguments, binding)."""
    asyncio.run(_declare(url, queue, provider))


async def _publish(
    url: str, queue: str, durations: Sequence[float], provider: str | None
) -> list[str]:
    connection = await aio_pika.connect(url)
    ids = []
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        if provider is None:
            exchange, routing_key = channel.default_exchange, queue
        else:
            exchange = await channel.get_exchange(JOB_EXCHANGE, ensure=False)
            routing_key = job_routing_key(provider, "Job", "create")
        for index, seconds in enumerate(durations):
            envelope = _job(f"job-{index}", seconds)
            await exchange.publish(
                aio_pika.Message(
                    envelope.to_json(),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=envelope.job_id,
                ),
                routing_key=routing_key,
            )
            ids.append(envelope.job_id)
    return ids


def publish(
    url: str, queue: str, durations: Sequence[float], *, provider: str | None = None
) -> list[str]:
    """Publish one job per duration (confirmed); return their ids.

    With ``provider``, through the job exchange with that provider's routing key (the
    queue must be bound for it, as ``declare`` does), else straight to ``queue``.
    """
    return asyncio.run(_publish(url, queue, durations, provider))


async def _produce(
    url: str, queue: str, seconds: float, every: float, stop: threading.Event
) -> int:
    connection = await aio_pika.connect(url)
    published = 0
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        next_at = time.monotonic()
        while not stop.is_set():
            envelope = _job(f"steady-{published}", seconds)
            await channel.default_exchange.publish(
                aio_pika.Message(envelope.to_json(), content_type="application/json"),
                routing_key=queue,
            )
            published += 1
            next_at += every
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    return published


def produce(url: str, queue: str, *, seconds: float, every: float, stop: threading.Event) -> int:
    """Publish a ``seconds``-long job every ``every`` seconds (on a fixed schedule) until
    ``stop`` is set; return how many. Blocks: run it in a thread."""
    return asyncio.run(_produce(url, queue, seconds, every, stop))


async def _results(
    url: str, queue: str, provider: str, ids: Sequence[str], timeout: float, lookback: float
) -> dict[str, JobResult | None]:
    reader = JobQueue(
        url,
        queue_name=queue,
        bindings=(provider_binding(provider),),
        result_lookback=lookback,
    )
    await reader.connect()
    try:
        found = await asyncio.gather(*(reader.get_result(i, timeout=timeout) for i in ids))
    finally:
        await reader.disconnect()
    return dict(zip(ids, found, strict=True))


def results(
    url: str,
    queue: str,
    provider: str,
    ids: Sequence[str],
    timeout: float,
    *,
    lookback: float = 60.0,
) -> dict[str, JobResult | None]:
    """job id -> JobResult (or None when none came within ``timeout``).

    ``lookback``: seconds of the results stream read up front. Results older than that are
    found by stream scans the look-ups share, each reading from its job's submission on: a
    caller reading the results of a long run passes the run's length, so they are read once."""
    return asyncio.run(_results(url, queue, provider, ids, timeout, lookback))


async def _delete(url: str, queue: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)


def delete(url: str, queue: str) -> None:
    asyncio.run(_delete(url, queue))
