"""A worker that turns idle says so at once, not at its next regular heartbeat.

The autoscaler removes a worker only once a heartbeat shows it idle, so this beat is what lets
a finished worker go within a fraction of a second of its last job.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aio_pika
import pytest

from itl_controlplane_sdk.contract import topology
from itl_controlplane_sdk.workers import JobQueue
from itl_harness.workers import WorkerProcess
from tests.support.requests import demo_request

pytestmark = pytest.mark.integration

INTERVAL = 10.0
"""The worker's heartbeat interval here: long, so a beat well within it is the idle one."""


class Beats:
    """Every heartbeat of one pool, as it arrives (a private queue on the fanout exchange)."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        """(monotonic arrival time, heartbeat body)."""

    async def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.received.append((time.monotonic(), json.loads(message.body)))


@pytest.fixture
async def beats(rabbitmq_url: str) -> AsyncIterator[tuple[str, Beats]]:
    pool = f"pool-idle-{uuid.uuid4().hex[:8]}"
    seen = Beats()
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            topology.HEARTBEAT_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange)

        async def mine(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            if json.loads(message.body).get("pool") == pool:
                await seen.on_message(message)

        await queue.consume(mine, no_ack=True)
        yield pool, seen


async def until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def test_an_idle_worker_is_seen_idle_well_within_its_heartbeat_interval(
    producer: JobQueue,
    worker_process: Callable[..., WorkerProcess],
    beats: tuple[str, Beats],
) -> None:
    pool, seen = beats
    await producer.get_worker_heartbeats()  # subscribe before the worker starts
    worker = worker_process("pod-idle", WORKER_POOL=pool, HEARTBEAT_INTERVAL=str(INTERVAL))
    worker.start()
    await until(lambda: seen.received, 10, "the worker's first heartbeat")
    first_at = seen.received[0][0]

    async def run_job() -> float:
        job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request(seconds=0.5))
        assert await producer.get_result(job_id, timeout=10) is not None
        return time.monotonic()

    async def seen_idle() -> bool:
        workers = await producer.get_worker_heartbeats(pool)
        return bool(workers) and workers[0]["in_flight"] == 0 and workers[0]["jobs_processed"] == 1

    ended = await run_job()
    while not await seen_idle():
        assert time.monotonic() < ended + INTERVAL, worker.log()
        await asyncio.sleep(0.02)
    idle_after = time.monotonic() - ended
    # The regular beat could come up to 10 s after the job; this one comes after the settle
    # time and a broker round trip (2 s leaves room for a loaded machine).
    assert idle_after < 2.0, f"idle seen {idle_after:.2f}s after the result"
    assert time.monotonic() - first_at < INTERVAL - 1
    # Two more short jobs within the same interval.
    await run_job()
    await run_job()
    assert time.monotonic() - first_at < INTERVAL - 0.5

    # At most one extra beat between two regular ones: the two jobs that ended after the
    # first did not each send one.
    await until(lambda: len(seen.received) >= 3, INTERVAL + 5, "the next regular heartbeat")
    before_next = [at for at, _ in seen.received if at - first_at < INTERVAL - 0.5]
    assert len(before_next) == 2, [(round(at - first_at, 2), b) for at, b in seen.received]
    assert seen.received[1][1]["in_flight"] == 0
    assert seen.received[1][1]["jobs_processed"] == 1
