"""Fixtures for tests against the local 3-node RabbitMQ cluster (``make rabbitmq-cluster-up``).

Tests kill and restart nodes freely: a node a test took down is started again when the test
ends, and every test starts with all three nodes up and clustered. Everything on the cluster
runs in replicated mode. ``make test`` starts the cluster and runs this tier; ``make
test-cluster`` runs it alone.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from itl_controlplane_sdk.workers import JobQueue
from itl_harness.workers import WorkerProcess
from tests.support.cluster import (
    TEST_QUEUE_PREFIX,
    RabbitMQCluster,
    delete_pool_queues,
    leftover_pools,
    require_cluster,
)

pytestmark = pytest.mark.integration

ALL_JOBS = ("provider.#",)


@pytest.fixture
def rabbitmq_cluster() -> Iterator[RabbitMQCluster]:
    cluster = require_cluster()
    yield cluster
    cluster.restore()


@pytest.fixture(scope="session", autouse=True)
def no_leftover_pools() -> None:
    """Deletes pool queues an earlier, killed run left behind, once per session."""
    cluster = require_cluster()
    asyncio.run(delete_pool_queues(cluster, *leftover_pools(cluster)))


@pytest.fixture
async def cluster_queue(rabbitmq_cluster: RabbitMQCluster) -> AsyncIterator[str]:
    """A fresh pool queue name; its bands and retry queues are deleted afterwards."""
    name = f"{TEST_QUEUE_PREFIX}{uuid.uuid4().hex[:10]}"
    yield name
    await delete_pool_queues(rabbitmq_cluster, name)


@pytest.fixture
async def cluster_job_queue(
    rabbitmq_cluster: RabbitMQCluster, cluster_queue: str
) -> AsyncIterator[Callable[..., Any]]:
    """Factory of connected replicated JobQueues on the test's queue (``first`` node first)."""
    queues: list[JobQueue] = []

    async def make(first: int = 1, **options: Any) -> JobQueue:
        queue = JobQueue(
            rabbitmq_cluster.urls_from(first),
            queue_name=cluster_queue,
            bindings=ALL_JOBS,
            queue_type="replicated",
            **options,
        )
        await queue.connect()
        queues.append(queue)
        return queue

    yield make
    for queue in queues:
        await queue.disconnect()


@pytest.fixture
def cluster_worker(
    rabbitmq_cluster: RabbitMQCluster, cluster_queue: str, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory of real worker processes on the test's replicated queue (``first`` node first)."""
    processes: list[WorkerProcess] = []

    def make(worker_id: str, first: int = 1, **env: str) -> WorkerProcess:
        process = WorkerProcess(
            worker_id,
            rabbitmq_cluster.urls_from(first),
            tmp_path,
            env={
                "JOB_QUEUE": cluster_queue,
                "JOB_BINDINGS": ",".join(ALL_JOBS),
                "QUEUE_TYPE": "replicated",
                **env,
            },
        )
        processes.append(process)
        return process

    yield make
    for process in processes:
        process.stop(timeout=10)
