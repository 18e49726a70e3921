"""Fixtures for the SDK's tests against the real broker.

Each test gets its own job queue bound to every job routing key (``provider.#``), so it sees
only the jobs it submits, and the queue is deleted afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from itl_controlplane_sdk import ResourceProviderRegistry, ResourceRequest
from itl_controlplane_sdk.providers.base import ResourceProvider
from itl_controlplane_sdk.providers.examples import register_example_providers
from itl_controlplane_sdk.workers import JobQueue, ProviderWorker
from itl_harness.workers import WorkerProcess

pytestmark = pytest.mark.integration

ALL_JOBS = ("provider.#",)


def demo_request(name: str = "job", **body: Any) -> ResourceRequest:
    return ResourceRequest(
        subscription_id="sub-1",
        resource_group="rg-1",
        provider_namespace="ITL.Demo",
        resource_type="Job",
        resource_name=name,
        location="westeurope",
        body=body,
    )


@pytest.fixture
async def queue_name(rabbitmq_url: str) -> AsyncIterator[str]:
    name = f"test.jobs.{uuid.uuid4().hex[:10]}"
    yield name
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)
        for delay in (50, 100, 200, 400, 800, 1600):
            channel = await connection.channel()
            await channel.queue_delete(f"{name}.retry.{delay}ms")


@pytest.fixture
async def producer(rabbitmq_url: str, queue_name: str) -> AsyncIterator[JobQueue]:
    queue = JobQueue(rabbitmq_url, queue_name=queue_name, bindings=ALL_JOBS)
    await queue.connect()
    yield queue
    await queue.disconnect()


StartWorker = Callable[..., Awaitable[ProviderWorker]]


@pytest.fixture
async def start_worker(rabbitmq_url: str, queue_name: str) -> AsyncIterator[StartWorker]:
    """Starts in-process ProviderWorkers on the test's queue; stops them afterwards."""
    started: list[ProviderWorker] = []

    async def start(
        *, providers: tuple[tuple[str, str, ResourceProvider], ...] = (), **options: Any
    ) -> ProviderWorker:
        registry = ResourceProviderRegistry()
        register_example_providers(registry)
        for namespace, resource_type, provider in providers:
            registry.register_provider(namespace, resource_type, provider)
        queue = JobQueue(rabbitmq_url, queue_name=queue_name, bindings=ALL_JOBS)
        worker = ProviderWorker(f"worker-{len(started)}", registry, queue, **options)
        await worker.start()
        await worker.start_consuming_jobs()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        await worker.stop()
        await worker.job_queue.disconnect()


@pytest.fixture
def worker_process(
    rabbitmq_url: str, queue_name: str, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory of real worker processes on the test's queue (stopped afterwards)."""
    processes: list[WorkerProcess] = []

    def make(worker_id: str, **env: str) -> WorkerProcess:
        process = WorkerProcess(
            worker_id,
            rabbitmq_url,
            tmp_path,
            env={"JOB_QUEUE": queue_name, "JOB_BINDINGS": ",".join(ALL_JOBS), **env},
        )
        processes.append(process)
        return process

    yield make
    for process in processes:
        process.stop(timeout=10)
