"""The worker process: endpoints, heartbeats, crashes, draining and broker restarts."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import pytest

from itl_controlplane_sdk.workers import JobQueue, JobStatus
from itl_harness.workers import WorkerProcess
from tests.support.requests import demo_request
from tests.support.services import rabbitmqctl

pytestmark = pytest.mark.integration

both_protocols = pytest.mark.parametrize("results_protocol", ["amqp", "stream"])
"""Crash, drain and restart tests run over both results protocols (RESULTS_PROTOCOL)."""

WorkerFactory = Callable[..., WorkerProcess]


async def poll(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def test_health_status_and_metrics_endpoints(
    producer: JobQueue, worker_process: WorkerFactory
) -> None:
    worker = worker_process("pod-endpoints", MAX_CONCURRENT_JOBS="4").start()
    job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request())
    assert await producer.get_result(job_id, timeout=10) is not None

    assert worker.get("/health") == (200, {"status": "healthy", "worker_id": "pod-endpoints"})
    status = worker.status()
    assert {
        "worker_id",
        "worker_type",
        "is_running",
        "jobs_processed",
        "jobs_failed",
        "uptime_seconds",
        "started_at",
        "in_flight",
        "capacity",
    } <= set(status)
    assert status["worker_type"] == "provider"
    assert status["jobs_processed"] == 1
    assert status["capacity"] == 4
    code, metrics = worker.get("/metrics")
    assert code == 200
    for line in (
        "# TYPE worker_jobs_processed counter",
        'worker_jobs_processed{worker_id="pod-endpoints"} 1',
        'worker_jobs_failed{worker_id="pod-endpoints"} 0',
        "# TYPE worker_uptime_seconds gauge",
        'worker_running{worker_id="pod-endpoints"} 1',
        'worker_jobs_in_flight{pool="default",worker_id="pod-endpoints"} 0.0',
        'worker_job_capacity{pool="default",worker_id="pod-endpoints"} 4.0',
    ):
        assert line in metrics, line
    assert (
        'worker_job_duration_seconds_count{operation="create",pool="default",'
        'status="completed",worker_id="pod-endpoints"} 1.0' in metrics
    )


async def test_heartbeats_report_pool_capacity_and_in_flight(
    producer: JobQueue, worker_process: WorkerFactory
) -> None:
    await producer.get_worker_heartbeats()  # subscribe before the worker starts
    worker = worker_process("pod-hb", WORKER_POOL="pool-a", MAX_CONCURRENT_JOBS="3").start()
    await producer.submit_job("ITL.Demo", "Job", "create", demo_request(seconds=3))

    async def busy() -> list[dict[str, object]]:
        return [h for h in await producer.get_worker_heartbeats("pool-a") if h["in_flight"] == 1]

    deadline = time.monotonic() + 10
    beats: list[dict[str, object]] = []
    while not beats and time.monotonic() < deadline:
        beats = await busy()
        await asyncio.sleep(0.1)
    assert beats, worker.log()
    assert beats[0]["worker_id"] == "pod-hb"
    assert beats[0]["capacity"] == 3
    assert beats[0]["draining"] is False
    assert await producer.get_worker_heartbeats("another-pool") == []

    worker.stop()
    deadline = time.monotonic() + 10
    while await producer.get_worker_heartbeats("pool-a") and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert await producer.get_worker_heartbeats("pool-a") == []


@both_protocols
async def test_sigkill_mid_job_loses_nothing(
    producer: JobQueue, worker_process: WorkerFactory
) -> None:
    doomed = worker_process("pod-doomed").start()
    job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request(seconds=2))
    await poll(lambda: doomed.status()["in_flight"] == 1, 10, "the job to start")

    doomed.signal(signal.SIGKILL)
    doomed.wait(10)
    worker_process("pod-survivor").start()
    result = await producer.get_result(job_id, timeout=20)

    assert result is not None and result.status is JobStatus.COMPLETED


@both_protocols
async def test_sigterm_drains_in_flight_jobs_before_exit(
    producer: JobQueue, worker_process: WorkerFactory
) -> None:
    worker = worker_process("pod-draining").start()
    job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request(seconds=2))
    await poll(lambda: worker.status()["in_flight"] == 1, 10, "the job to start")

    worker.signal(signal.SIGTERM)
    await poll(lambda: worker.get("/health")[0] == 503, 5, "/health to turn 503")
    assert worker.get("/health")[1]["status"] == "unhealthy"
    assert worker.wait(15) == 0

    result = await producer.get_result(job_id, timeout=5)
    assert result is not None and result.status is JobStatus.COMPLETED
    stats = await producer.get_queue_stats()
    assert stats["queues"][producer.queue_name]["message_count"] == 0  # nothing redelivered
    assert "draining: finishing 1 in-flight job(s)" in worker.log()


async def test_drain_timeout_requeues_unfinished_jobs_for_other_workers(
    producer: JobQueue, worker_process: WorkerFactory
) -> None:
    worker = worker_process("pod-impatient", DRAIN_TIMEOUT="0.5").start()
    job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request(seconds=3))
    await poll(lambda: worker.status()["in_flight"] == 1, 10, "the job to start")

    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    worker_process("pod-patient").start()

    result = await producer.get_result(job_id, timeout=20)
    assert result is not None and result.status is JobStatus.COMPLETED


@both_protocols
async def test_worker_and_client_survive_a_broker_restart(
    producer: JobQueue, worker_process: WorkerFactory
) -> None:
    worker = worker_process("pod-restart").start()

    rabbitmqctl("stop_app")
    try:
        await poll(lambda: worker.get("/health")[0] == 503, 15, "/health to notice the outage")
    finally:
        rabbitmqctl("start_app")
    await poll(lambda: worker.get("/health")[0] == 200, 60, "the worker to reconnect")
    assert await producer.wait_until_connected(60)

    job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request())
    result = await producer.get_result(job_id, timeout=20)
    assert result is not None and result.status is JobStatus.COMPLETED


async def test_credentials_never_reach_logs_or_errors(
    rabbitmq_url: str, tmp_path_factory: pytest.TempPathFactory, worker_process: WorkerFactory
) -> None:
    secret_url = "amqp://itl-user:Sup3r-s3cret-pw@127.0.0.1:5672/"
    worker = worker_process("pod-secret", RABBITMQ_URL=secret_url).start(wait_healthy=0)
    queue = JobQueue(secret_url)
    with pytest.raises(ConnectionError) as raised:
        await queue.connect()
    deadline = time.monotonic() + 10
    while "retrying" not in worker.log() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    worker.stop()

    assert "retrying" in worker.log()
    assert "Sup3r-s3cret-pw" not in worker.log()
    assert "Sup3r-s3cret-pw" not in str(raised.value)
    assert "itl-user:***@127.0.0.1" in str(raised.value)
    assert "Sup3r-s3cret-pw" not in repr(queue)
