"""Priorities, concurrency, timeouts, retries, the dead-letter queue and redrive."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aio_pika
import pytest

from itl_controlplane_sdk import ResourceListResponse, ResourceRequest, ResourceResponse
from itl_controlplane_sdk.contract.topology import DEAD_LETTER_QUEUE
from itl_controlplane_sdk.providers.base import ResourceProvider
from itl_controlplane_sdk.workers import JobQueue, JobStatus
from tests.integration.sdk.conftest import StartWorker
from tests.support.requests import demo_request

pytestmark = pytest.mark.integration


class RecordingProvider(ResourceProvider):
    """Sleeps ``body.seconds`` and records start order and peak concurrency."""

    def __init__(self) -> None:
        super().__init__("ITL.Test")
        self.started: list[str] = []
        self.running = 0
        self.peak = 0

    async def create_or_update_resource(self, request: ResourceRequest) -> ResourceResponse:
        self.started.append(request.resource_name)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(float(request.body.get("seconds", 0)))
        finally:
            self.running -= 1
        return ResourceResponse(id=request.resource_id, name=request.resource_name)

    async def get_resource(self, request: ResourceRequest) -> ResourceResponse:
        raise NotImplementedError

    async def list_resources(self, request: ResourceRequest) -> ResourceListResponse:
        raise NotImplementedError

    async def delete_resource(self, request: ResourceRequest) -> ResourceResponse:
        raise NotImplementedError

    async def execute_action(self, request: ResourceRequest) -> ResourceResponse:
        raise NotImplementedError


def recorder_request(name: str, **body: Any) -> ResourceRequest:
    return demo_request(name, **body).model_copy(
        update={"provider_namespace": "ITL.Test", "resource_type": "Recorder"}
    )


async def dlq_messages(queue: JobQueue, expected: int, timeout: float = 10) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        messages = await queue.get_dlq_messages()
        if len(messages) >= expected or time.monotonic() > deadline:
            return messages
        await asyncio.sleep(0.1)


async def test_high_priority_job_overtakes_a_backlog(
    producer: JobQueue, start_worker: StartWorker
) -> None:
    recorder = RecordingProvider()
    backlog = [
        await producer.submit_job(
            "ITL.Test", "Recorder", "create", recorder_request(f"low-{i}", seconds=0.02), priority=1
        )
        for i in range(30)
    ]
    urgent = await producer.submit_job(
        "ITL.Test", "Recorder", "create", recorder_request("urgent"), priority=10
    )

    await start_worker(providers=(("ITL.Test", "Recorder", recorder),), max_concurrent_jobs=1)
    assert await producer.get_result(urgent, timeout=20) is not None
    assert await producer.get_result(backlog[-1], timeout=20) is not None

    assert recorder.started.index("urgent") <= 1, recorder.started[:5]


async def test_max_concurrent_jobs_bounds_parallel_work(
    producer: JobQueue, start_worker: StartWorker
) -> None:
    recorder = RecordingProvider()
    await start_worker(providers=(("ITL.Test", "Recorder", recorder),), max_concurrent_jobs=3)

    job_ids = [
        await producer.submit_job(
            "ITL.Test", "Recorder", "create", recorder_request(f"j{i}", seconds=0.3)
        )
        for i in range(9)
    ]
    results = await asyncio.gather(*(producer.get_result(j, timeout=20) for j in job_ids))

    assert all(r is not None and r.status is JobStatus.COMPLETED for r in results)
    assert recorder.peak == 3


async def test_job_running_past_the_timeout_fails_with_a_clear_error(
    producer: JobQueue, start_worker: StartWorker, clean_dlq: None
) -> None:
    await start_worker(job_timeout=0.5)

    job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request(seconds=5))
    result = await producer.get_result(job_id, timeout=10)

    assert result is not None
    assert result.status is JobStatus.FAILED
    assert result.error is not None
    assert "exceeded the job timeout of 0.5s" in result.error


async def test_retryable_failure_is_retried_with_backoff_then_succeeds(
    producer: JobQueue, start_worker: StartWorker
) -> None:
    worker = await start_worker(max_attempts=3, retry_base_delay=0.2)

    started = time.monotonic()
    job_id = await producer.submit_job(
        "ITL.Demo", "Job", "create", demo_request("flaky", fail_attempts=2)
    )
    result = await producer.get_result(job_id, timeout=15)

    assert result is not None and result.status is JobStatus.COMPLETED, result
    assert result.result is not None and result.result["properties"]["attempts"] == 3
    assert time.monotonic() - started >= 0.2 + 0.4  # two backoffs: 0.2 s, then 0.4 s
    assert worker.jobs_failed == 0


async def test_exhausted_retries_dead_letter_the_job_with_the_reason_and_redrive_returns_it(
    producer: JobQueue, start_worker: StartWorker, clean_dlq: None
) -> None:
    worker = await start_worker(max_attempts=3, retry_base_delay=0.05)

    job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request(fail="retryable"))
    result = await producer.get_result(job_id, timeout=15)

    assert result is not None and result.status is JobStatus.FAILED
    assert result.error is not None and "after 3 attempts" in result.error
    assert worker.jobs_failed == 1
    [dead] = await dlq_messages(producer, 1)
    assert dead["job_id"] == job_id
    assert "simulated transient failure" in dead["reason"]
    assert dead["attempts"] == 3

    await worker.stop()
    moved = await producer.redrive_dlq()
    assert moved == 1
    assert await producer.get_dlq_messages() == []
    stats = await producer.get_queue_stats()
    assert stats["queues"][producer.queue_name]["message_count"] == 1


async def test_permanent_failures_fail_at_once_and_are_dead_lettered(
    producer: JobQueue, start_worker: StartWorker, clean_dlq: None
) -> None:
    worker = await start_worker(max_attempts=5, retry_base_delay=0.05)

    permanent = await producer.submit_job(
        "ITL.Demo", "Job", "create", demo_request(fail="permanent")
    )
    unknown = await producer.submit_job("ITL.Unknown", "Widget", "create", demo_request())
    results = [await producer.get_result(j, timeout=10) for j in (permanent, unknown)]

    assert [r.status if r else None for r in results] == [JobStatus.FAILED, JobStatus.FAILED]
    assert results[1] is not None and "No provider found for ITL.Unknown/Widget" in str(
        results[1].error
    )
    assert worker.metrics.retries._value.get() == 0
    reasons = {m["job_id"]: m["reason"] for m in await dlq_messages(producer, 2)}
    assert "simulated permanent failure" in reasons[permanent]
    assert "No provider found" in reasons[unknown]


async def test_malformed_message_goes_to_the_dlq_and_the_worker_keeps_working(
    rabbitmq_url: str, producer: JobQueue, start_worker: StartWorker, clean_dlq: None
) -> None:
    await start_worker()
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        for body in (b"not json at all", b'{"job_id": "x1", "operation": "explode"}', b"[1,2]"):
            await channel.default_exchange.publish(
                aio_pika.Message(body, content_type="application/json", message_id="bad"),
                routing_key=producer.queue_name,
            )

    good = await producer.submit_job("ITL.Demo", "Job", "create", demo_request())
    result = await producer.get_result(good, timeout=10)

    assert result is not None and result.status is JobStatus.COMPLETED
    reasons = sorted(m["reason"] for m in await dlq_messages(producer, 3))
    assert len(reasons) == 3
    assert any("not JSON" in r for r in reasons)
    assert any("operation" in r for r in reasons)
    assert any("not a JSON object" in r for r in reasons)


async def test_queue_stats_report_job_queue_results_and_dlq(
    producer: JobQueue, clean_dlq: None
) -> None:
    before = await producer.get_queue_stats()
    await producer.submit_job("ITL.Demo", "Job", "create", demo_request())
    await producer.submit_job("ITL.Demo", "Job", "create", demo_request())

    stats = await producer.get_queue_stats()

    assert before["queues"][producer.queue_name]["message_count"] == 0  # fresh on every read
    assert stats["connected"] is True
    assert stats["queues"][producer.queue_name] == {
        "exists": True,
        "message_count": 2,
        "consumer_count": 0,
    }
    assert {"provider.results", DEAD_LETTER_QUEUE} <= set(stats["queues"])
    assert stats["queues"][DEAD_LETTER_QUEUE]["message_count"] == 0


async def test_queue_stats_for_a_missing_queue_say_so(producer: JobQueue) -> None:
    names = ["no.such.queue", producer.queue_name, "no.such.queue", producer.queue_name]

    stats = await producer.get_queue_stats(queues=names)

    assert stats["connected"] is True
    assert stats["queues"]["no.such.queue"]["exists"] is False
    assert "not found" in stats["queues"]["no.such.queue"]["error"]
    # The missing queue closed the stats channel; the next read opened a fresh one.
    assert stats["queues"][producer.queue_name]["exists"] is True


async def test_redrive_routes_by_provider_when_the_original_queue_is_gone(
    rabbitmq_url: str, producer: JobQueue, start_worker: StartWorker, clean_dlq: None
) -> None:
    worker = await start_worker()
    job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request(fail="permanent"))
    assert (await producer.get_result(job_id, timeout=10)) is not None
    assert len(await dlq_messages(producer, 1)) == 1
    await worker.stop()
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(producer.queue_name)
    replacement = JobQueue(
        rabbitmq_url, queue_name=f"{producer.queue_name}.new", bindings=("provider.ITL.Demo.#",)
    )
    await replacement.connect()
    try:
        moved = await replacement.redrive_dlq()
        stats = await replacement.get_queue_stats()
    finally:
        connection = await aio_pika.connect(rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(replacement.queue_name)
        await replacement.disconnect()

    assert moved == 1
    assert stats["queues"][replacement.queue_name]["message_count"] == 1
    assert stats["queues"][DEAD_LETTER_QUEUE]["message_count"] == 0
