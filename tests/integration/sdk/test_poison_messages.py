"""Poison messages on a real broker: each one ends in the DLQ with a reason, no slot is lost.

A worker with two slots gets poison first (deep nesting, a huge body, wrong content types, a
provider raising a BaseException, a failure inside the worker's own recording code), then
good jobs: every good job must finish, every bad message must reach the DLQ, and the worker
must hold nothing afterwards.
"""

from __future__ import annotations

import asyncio
import time

import aio_pika
import pytest

from itl_controlplane_sdk import ResourceListResponse, ResourceRequest, ResourceResponse
from itl_controlplane_sdk.contract import topology
from itl_controlplane_sdk.providers.base import ResourceProvider
from itl_controlplane_sdk.workers import JobQueue, JobStatus
from itl_controlplane_sdk.workers.consumer import HEADER_QUEUE
from itl_controlplane_sdk.workers.envelope import JobEnvelope, new_job_id
from itl_controlplane_sdk.workers.results import JobResult
from tests.integration.sdk.conftest import StartWorker
from tests.integration.sdk.test_delivery import dlq_messages
from tests.support.requests import demo_request

pytestmark = pytest.mark.integration


class ProviderBug(BaseException):
    """Not an Exception: slips past every ``except Exception``."""


class RaisingProvider(ResourceProvider):
    def __init__(self) -> None:
        super().__init__("ITL.Test")

    async def create_or_update_resource(self, request: ResourceRequest) -> ResourceResponse:
        if request.resource_name == "exit":
            raise SystemExit(3)
        raise ProviderBug("provider broke")

    async def get_resource(self, request: ResourceRequest) -> ResourceResponse:
        raise NotImplementedError

    async def list_resources(self, request: ResourceRequest) -> ResourceListResponse:
        raise NotImplementedError

    async def delete_resource(self, request: ResourceRequest) -> ResourceResponse:
        raise NotImplementedError


def envelope_body(name: str, resource_type: str = "Job") -> bytes:
    request = demo_request(name).model_copy(
        update={"provider_namespace": "ITL.Demo", "resource_type": resource_type}
    )
    return JobEnvelope(
        job_id=new_job_id(),
        provider_namespace="ITL.Demo",
        resource_type=resource_type,
        operation="create",
        request=request,
    ).to_json()


async def test_poison_messages_are_dead_lettered_and_free_their_slots(
    rabbitmq_url: str,
    producer: JobQueue,
    start_worker: StartWorker,
    clean_dlq: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Stand-in for a bug in the worker's own code (nothing else makes recording a result
    # raise something unexpected): publishing the result of job "our-bug" raises.
    publish_result = JobQueue.publish_result

    async def buggy_publish_result(self: JobQueue, result: JobResult) -> None:
        if result.result is not None and result.result.get("name") == "our-bug":
            raise RuntimeError("bug in result recording")
        await publish_result(self, result)

    monkeypatch.setattr(JobQueue, "publish_result", buggy_publish_result)
    worker = await start_worker(
        providers=(("ITL.Demo", "Raising", RaisingProvider()),), max_concurrent_jobs=2
    )
    json_type = "application/json"
    poison = [
        (b"[" * 5000 + b"]" * 5000, json_type, "nests too deeply"),
        (b"[" * 5000 + b"]" * 5000, json_type, "nests too deeply"),
        (b'{"a": "' + b"x" * (2 * 1024 * 1024) + b'"}', json_type, "exceeds MAX_JOB_BYTES"),
        (envelope_body("plain"), "text/plain", "content type 'text/plain'"),
        (envelope_body("untyped"), None, "no content type"),
        (envelope_body("bug", "Raising"), json_type, "ProviderBug: provider broke"),
        (envelope_body("exit", "Raising"), json_type, "SystemExit: 3"),
        (envelope_body("our-bug"), json_type, "RuntimeError: bug in result recording"),
    ]
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for n, (body, content_type, _) in enumerate(poison):
            await channel.default_exchange.publish(
                aio_pika.Message(body, content_type=content_type, message_id=f"poison-{n}"),
                routing_key=producer.queue_name,
            )
    good = [
        await producer.submit_job("ITL.Demo", "Job", "create", demo_request(f"good-{n}"))
        for n in range(20)
    ]

    results = await asyncio.gather(*(producer.get_result(job, timeout=30) for job in good))
    assert [r.status if r else None for r in results] == [JobStatus.COMPLETED] * 20
    dead = {m["job_id"]: m["reason"] for m in await dlq_messages(producer, len(poison))}
    for n, (_, _, reason) in enumerate(poison):
        message_id = f"poison-{n}"
        assert reason in dead.get(message_id, ""), (message_id, dead.get(message_id))
    deadline = time.monotonic() + 10
    while worker.in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    status = worker.get_status()
    assert (status["in_flight"], status["unacked"], status["stuck"]) == (0, 0, 0)


async def test_redrive_leaves_poison_in_the_dlq_and_moves_the_jobs_behind_it(
    rabbitmq_url: str, producer: JobQueue, clean_dlq: None
) -> None:
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for n, body in enumerate([b"[" * 5000 + b"]" * 5000, b"not json", b"[" * 3000]):
            await channel.default_exchange.publish(
                aio_pika.Message(body, message_id=f"poison-{n}"),
                routing_key=topology.DEAD_LETTER_QUEUE,
            )
        await channel.default_exchange.publish(
            aio_pika.Message(
                envelope_body("redriven"),
                content_type="application/json",
                message_id="good",
                headers={HEADER_QUEUE: producer.queue_name},
            ),
            routing_key=topology.DEAD_LETTER_QUEUE,
        )

    assert await producer.redrive_dlq() == 1
    left = {m["job_id"] for m in await producer.get_dlq_messages()}
    assert left == {"poison-0", "poison-1", "poison-2"}
    stats = await producer.get_queue_stats([producer.queue_name])
    assert stats["queues"][producer.queue_name]["message_count"] == 1
