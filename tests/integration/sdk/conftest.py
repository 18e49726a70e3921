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

from itl_controlplane_sdk import ResourceProviderRegistry
from itl_controlplane_sdk.providers.base import ResourceProvider
from itl_controlplane_sdk.providers.examples import register_example_providers
from itl_controlplane_sdk.workers import JobQueue, ProviderWorker
from itl_harness.workers import WorkerProcess
from tests.support.services import require_rabbitmq_stream

pytestmark = pytest.mark.integration

ALL_JOBS = ("provider.#",)


@pytest.fixture
def results_protocol() -> str:
    """The results protocol of the test's queues and workers: the default (``auto``: the
    stream protocol on a broker that offers it); result-path tests parametrize it over
    ``amqp`` and ``stream``."""
    return "auto"


@pytest.fixture
def queue_options(results_protocol: str, rabbitmq_url: str, rabbitmq_stream_port: int) -> Any:
    """``JobQueue`` keyword arguments for the test's results protocol."""
    if results_protocol == "stream":
        require_rabbitmq_stream(rabbitmq_url, rabbitmq_stream_port)
    return {"results_protocol": results_protocol, "results_stream_port": rabbitmq_stream_port}


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
async def producer(
    rabbitmq_url: str, queue_name: str, queue_options: Any
) -> AsyncIterator[JobQueue]:
    queue = JobQueue(rabbitmq_url, queue_name=queue_name, bindings=ALL_JOBS, **queue_options)
    await queue.connect()
    yield queue
    await queue.disconnect()


StartWorker = Callable[..., Awaitable[ProviderWorker]]


@pytest.fixture
async def start_worker(
    rabbitmq_url: str, queue_name: str, queue_options: Any
) -> AsyncIterator[StartWorker]:
    """Starts in-process ProviderWorkers on the test's queue; stops them afterwards."""
    started: list[ProviderWorker] = []

    async def start(
        *, providers: tuple[tuple[str, str, ResourceProvider], ...] = (), **options: Any
    ) -> ProviderWorker:
        registry = ResourceProviderRegistry()
        register_example_providers(registry)
        for namespace, resource_type, provider in providers:
            registry.register_provider(namespace, resource_type, provider)
        queue = JobQueue(rabbitmq_url, queue_name=queue_name, bindings=ALL_JOBS, **queue_options)
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
    rabbitmq_url: str, queue_name: str, tmp_path: Path, queue_options: Any
) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory of real worker processes on the test's queue (stopped afterwards)."""
    processes: list[WorkerProcess] = []

    def make(worker_id: str, **env: str) -> WorkerProcess:
        process = WorkerProcess(
            worker_id,
            rabbitmq_url,
            tmp_path,
            env={
                "JOB_QUEUE": queue_name,
                "JOB_BINDINGS": ",".join(ALL_JOBS),
                "RESULTS_PROTOCOL": queue_options["results_protocol"],
                "RESULTS_STREAM_PORT": str(queue_options["results_stream_port"]),
                **env,
            },
        )
        processes.append(process)
        return process

    yield make
    for process in processes:
        process.stop(timeout=10)
