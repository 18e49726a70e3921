"""Fixtures for the API against the real broker, real worker processes and real API processes.

The broker is shared with other tests and benchmarks, so each test gets its own provider
namespace (``ITL.T<hex>``, served by ``tests/integration/api/providers.py``) and its own job
queue bound to ``provider.<namespace>.#``: a test sees only its own jobs and steals nobody's.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from itl_controlplane_sdk.workers import JobQueue
from itl_harness.workers import WorkerProcess
from tests.integration.api.apiprocess import ApiProcess

pytestmark = pytest.mark.integration

TEST_PROVIDERS = "tests.integration.api.providers:register"
ADMIN_TOKEN = "test-admin-token"
API_VERSION = "api-version=2023-01-01"


def resource_path(namespace: str, name: str, resource_type: str = "Job") -> str:
    return f"/subscriptions/sub-1/resourceGroups/rg-1/providers/{namespace}/{resource_type}/{name}"


@pytest.fixture
def namespace() -> str:
    return f"ITL.T{uuid.uuid4().hex[:10]}"


@pytest.fixture
def provider_env(namespace: str, queue_name: str) -> dict[str, str]:
    """What API and workers share: the test's providers, namespace and queue."""
    return {
        "WORKER_PROVIDERS": TEST_PROVIDERS,
        "ITL_TEST_NAMESPACE": namespace,
        "JOB_QUEUE": queue_name,
        "JOB_BINDINGS": f"provider.{namespace}.#",
    }


@pytest.fixture
async def queue_name(rabbitmq_url: str) -> AsyncIterator[str]:
    name = f"test.api.{uuid.uuid4().hex[:10]}"
    yield name
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)


@pytest.fixture
async def observer(rabbitmq_url: str, queue_name: str, namespace: str) -> AsyncIterator[JobQueue]:
    """A JobQueue on the test's queue, for looking at what the API published."""
    queue = JobQueue(rabbitmq_url, queue_name=queue_name, bindings=(f"provider.{namespace}.#",))
    await queue.connect()
    yield queue
    await queue.disconnect()


@pytest.fixture
def offloading_env(
    rabbitmq_url: str, namespace: str, provider_env: dict[str, str]
) -> dict[str, str]:
    return {
        **provider_env,
        "OFFLOADING_ENABLED": "true",
        "RABBITMQ_URL": rabbitmq_url,
        "API_RESOURCE_GROUP_PROVIDER": f"{namespace}/ResourceGroup",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "JOB_TIMEOUT": "30",
    }


ApiFactory = Callable[..., ApiProcess]
WorkerFactory = Callable[..., WorkerProcess]


@pytest.fixture
def api_process(tmp_path: Path) -> Iterator[ApiFactory]:
    """Factory of API server processes (stopped afterwards)."""
    processes: list[ApiProcess] = []

    def make(name: str, env: dict[str, str], **overrides: str) -> ApiProcess:
        process = ApiProcess(name, tmp_path, env={**env, **overrides})
        processes.append(process)
        return process

    yield make
    for process in processes:
        process.stop()


@pytest.fixture
def worker_process(
    rabbitmq_url: str, provider_env: dict[str, str], tmp_path: Path
) -> Iterator[WorkerFactory]:
    """Factory of real worker processes on the test's queue (stopped afterwards)."""
    processes: list[WorkerProcess] = []

    def make(worker_id: str, **env: str) -> WorkerProcess:
        process = WorkerProcess(
            worker_id,
            rabbitmq_url,
            tmp_path,
            env={**provider_env, **env},
        )
        processes.append(process)
        return process

    yield make
    for process in processes:
        process.stop(timeout=10)


def job_id_of(response: Any) -> str:
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])
