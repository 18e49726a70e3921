"""Fixtures of the fault-injection (chaos) suite: its own broker node, queue and workers.

Run it with ``make chaos`` (it is part of ``make test`` too). Every scenario records each
execution through ``tests/chaos/recorder.py`` and fails on a lost job, a duplicate without a
fault, a stuck slot or a bad message outside the DLQ; figures go to ``$CHAOS_REPORT``
(default ``/tmp/itl-chaos-report.jsonl``) and to the output of ``pytest -s``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aio_pika
import pytest

from itl_controlplane_sdk.contract import topology
from itl_controlplane_sdk.workers import JobQueue
from itl_harness.rabbitmq_node import RabbitmqNode
from itl_harness.workers import WorkerProcess
from tests.chaos.recorder import NAMESPACE
from tests.support.own_broker import own_node, running

pytestmark = pytest.mark.chaos

BINDINGS = (f"provider.{NAMESPACE}.#",)


@pytest.fixture(scope="session")
def chaos_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitmqNode]:
    with running(own_node(tmp_path_factory.mktemp("chaos-broker"), "itl-chaos")) as broker:
        yield broker


@pytest.fixture
def record_dir(tmp_path: Path) -> Path:
    path = tmp_path / "executions"
    path.mkdir()
    return path


@pytest.fixture
async def queue_name(chaos_broker: RabbitmqNode) -> AsyncIterator[str]:
    name = f"chaos.jobs.{uuid.uuid4().hex[:8]}"
    yield name
    try:
        connection = await aio_pika.connect(chaos_broker.amqp_url, timeout=30)
    except Exception:
        return  # the broker is down after a failed scenario; the node is removed anyway
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)
        channel = await connection.channel()
        dlq = await channel.get_queue(topology.DEAD_LETTER_QUEUE, ensure=False)
        await dlq.purge()


@pytest.fixture
def results_protocol() -> str:
    """The results protocol of the scenario's producer and workers; some scenarios run over
    ``amqp`` and ``stream`` both."""
    return "amqp"


@pytest.fixture
async def producer(
    chaos_broker: RabbitmqNode, queue_name: str, results_protocol: str
) -> AsyncIterator[JobQueue]:
    queue = JobQueue(
        chaos_broker.amqp_url,
        queue_name=queue_name,
        bindings=BINDINGS,
        publish_timeout=5,
        results_protocol=results_protocol,
        results_stream_port=chaos_broker.stream_port,
    )
    await queue.connect()
    yield queue
    await queue.disconnect()


WorkerFactory = Callable[..., WorkerProcess]


@pytest.fixture
def workers(
    chaos_broker: RabbitmqNode,
    queue_name: str,
    record_dir: Path,
    tmp_path: Path,
    results_protocol: str,
) -> Iterator[WorkerFactory]:
    """Starts real worker processes running the recorder on the scenario's queue."""
    started: list[WorkerProcess] = []

    def start(worker_id: str, *, wait_healthy: float = 60.0, **env: str) -> WorkerProcess:
        worker = WorkerProcess(
            worker_id,
            chaos_broker.amqp_url,
            tmp_path,
            env={
                "JOB_QUEUE": queue_name,
                "JOB_BINDINGS": ",".join(BINDINGS),
                "WORKER_PROVIDERS": "tests.chaos.recorder:register",
                "CHAOS_RECORD_DIR": str(record_dir),
                "RESULTS_PROTOCOL": results_protocol,
                "RESULTS_STREAM_PORT": str(chaos_broker.stream_port),
                **env,
            },
        )
        started.append(worker)
        return worker.start(wait_healthy=wait_healthy)

    yield start
    for worker in started:
        worker.stop(timeout=10)
