"""The SDK side of cancellation (``JobQueue.cancel_job``), against the real broker."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import pytest

from itl_controlplane_sdk import ResourceProviderRegistry, ResourceRequest
from itl_controlplane_sdk.workers import JobQueue, JobStatus, ProviderWorker
from tests.integration.api.providers import register
from tests.support.services import require_rabbitmq_stream

pytestmark = pytest.mark.integration


def request(namespace: str, name: str, **body: object) -> ResourceRequest:
    return ResourceRequest(
        subscription_id="s",
        resource_group="rg",
        provider_namespace=namespace,
        resource_type="Job",
        resource_name=name,
        body=body,
    )


@pytest.mark.parametrize("results_protocol", ["amqp", "stream"])
async def test_cancelled_jobs_are_skipped_and_the_first_terminal_result_wins(
    rabbitmq_url: str,
    rabbitmq_stream_port: int,
    queue_name: str,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    results_protocol: Literal["amqp", "stream"],
) -> None:
    if results_protocol == "stream":
        require_rabbitmq_stream(rabbitmq_url, rabbitmq_stream_port)
    monkeypatch.setenv("ITL_TEST_NAMESPACE", namespace)
    bindings = (f"provider.{namespace}.#",)
    options: dict[str, Any] = {
        "results_protocol": results_protocol,
        "results_stream_port": rabbitmq_stream_port,
    }
    producer = JobQueue(rabbitmq_url, queue_name=queue_name, bindings=bindings, **options)
    await producer.connect()
    registry = ResourceProviderRegistry()
    register(registry)
    worker = ProviderWorker(
        "w-cancel",
        registry,
        JobQueue(rabbitmq_url, queue_name=queue_name, bindings=bindings, **options),
        max_concurrent_jobs=1,
    )
    try:
        cancelled = await producer.submit_job(namespace, "Job", "create", request(namespace, "c"))
        await producer.cancel_job(cancelled, "no longer needed")
        result = await producer.get_result(cancelled, timeout=5)
        assert result is not None and result.status is JobStatus.CANCELLED
        assert result.error == "no longer needed"

        await worker.start()
        await worker.start_consuming_jobs()
        slow = await producer.submit_job(
            namespace, "Job", "create", request(namespace, "s", seconds=1)
        )
        deadline = time.monotonic() + 10
        while await producer.get_job_progress(slow) is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        done = await producer.get_result(slow, timeout=10)
        assert done is not None and done.status is JobStatus.COMPLETED
        assert await producer.get_job_progress(slow) is None

        # The worker skipped the cancelled job: it ran only the slow one.
        assert worker.jobs_processed == 1
        again = await producer.get_result(cancelled, timeout=1)
        assert again is not None and again.status is JobStatus.CANCELLED

        with pytest.raises(ValueError, match="cancelled or failed"):
            await producer.cancel_job(slow, status=JobStatus.COMPLETED)
    finally:
        await worker.stop()
        await worker.job_queue.disconnect()
        await producer.disconnect()
