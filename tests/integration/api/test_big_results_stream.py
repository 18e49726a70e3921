"""Reading results on a results stream of 100 000 results never hurts the shared connection.

A look-up for a job the process cannot vouch for from memory scans the stream's history. On a
big stream the scan is cut off by the caller's timeout, or stops where the live tail takes
over; either way it must stop cleanly (no frame on a closed channel, which makes the broker
close the whole connection), in bounded time and memory, while submits on the same
connection keep working. The stream lives in a vhost of its own, deleted afterwards, so other
tests do not read through it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import httpx
import pytest

from itl_controlplane_sdk.contract import topology
from itl_controlplane_sdk.workers import JobQueue, JobResult, JobStatus
from tests.integration.api.conftest import API_VERSION, ApiFactory, resource_path
from tests.support.requests import demo_request
from tests.support.services import rabbitmqctl, require_rabbitmq

pytestmark = pytest.mark.integration

RESULTS = 100_000
OLD_JOB_AGE = 20 * 60.0


def job_id_at(epoch: float) -> str:
    """A version-7 job id created at ``epoch`` (what a job of that time would carry)."""
    value = (int(epoch * 1000) & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= 0b10 << 62
    value |= uuid.uuid4().int & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def fill(url: str, found_id: str) -> None:
    """RESULTS raw result messages, ``found_id``'s in the middle, published with confirms."""
    queue = JobQueue(url)
    await queue.connect()  # declares the results stream
    await queue.disconnect()
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = channel.default_exchange
        for start in range(0, RESULTS, 2000):
            batch = []
            for n in range(start, min(start + 2000, RESULTS)):
                job_id = found_id if n == RESULTS // 2 else str(uuid.uuid4())
                body = json.dumps(JobResult(job_id, JobStatus.COMPLETED, result={"n": n}).to_dict())
                batch.append(
                    exchange.publish(
                        aio_pika.Message(
                            body.encode(), content_type="application/json", message_id=job_id
                        ),
                        routing_key=topology.RESULTS_STREAM,
                    )
                )
            await asyncio.gather(*batch)


@pytest.fixture(scope="module")
def big_stream() -> Iterator[tuple[str, str]]:
    """(AMQP URL of a vhost whose results stream holds RESULTS results, an old job id in it)."""
    base = os.environ.get("ITL_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    require_rabbitmq(base)
    vhost = f"itl-test-results-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        parts = urlsplit(base)
        url = urlunsplit((parts.scheme, parts.netloc, f"/{vhost}", parts.query, ""))
        found_id = job_id_at(time.time() - OLD_JOB_AGE)
        started = time.monotonic()
        asyncio.run(fill(url, found_id))
        print(f"filled {RESULTS} results in {time.monotonic() - started:.1f}s")
        yield url, found_id
    finally:
        rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
async def client(big_stream: tuple[str, str]) -> AsyncIterator[JobQueue]:
    queue = JobQueue(
        big_stream[0], queue_name=f"test.reads.{uuid.uuid4().hex[:8]}", result_lookback=1.0
    )
    await queue.connect()
    yield queue
    await queue.disconnect()


async def test_old_results_are_found_and_unknown_ids_end_cleanly(
    big_stream: tuple[str, str], client: JobQueue
) -> None:
    _, found_id = big_stream
    started = time.monotonic()
    assert await client.get_result(job_id_at(time.time() - OLD_JOB_AGE), timeout=0) is None
    assert time.monotonic() - started < 0.2  # 0 means do not wait

    found = await client.find_result(found_id, timeout=60)
    assert found is not None and found.result == {"n": RESULTS // 2}

    # An unknown id reads to the end of the history, then answers: no waiting for timeout.
    before = rss_bytes()
    started = time.monotonic()
    assert await client.find_result(job_id_at(time.time() - OLD_JOB_AGE), timeout=120) is None
    whole_stream = time.monotonic() - started
    assert whole_stream < 120
    assert rss_bytes() - before < 50 * 1024 * 1024
    print(f"an unknown id read {RESULTS} results in {whole_stream:.1f}s")


async def test_readers_that_time_out_never_make_submits_fail(
    big_stream: tuple[str, str], client: JobQueue
) -> None:
    """Many concurrent look-ups of old unknown ids, cut off by their timeout mid-scan."""
    stop = asyncio.Event()
    submitted: list[str] = []
    disconnected: list[float] = []

    latencies: list[float] = []

    async def submit_steadily() -> None:
        while not stop.is_set():
            started = time.monotonic()
            submitted.append(await client.submit_job("ITL.Demo", "Job", "create", demo_request()))
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.02)

    async def watch_connection() -> None:
        while not stop.is_set():
            if not client.is_connected:
                disconnected.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def read(timeout: float) -> float:
        started = time.monotonic()
        assert await client.get_result(job_id_at(time.time() - OLD_JOB_AGE), timeout) is None
        return time.monotonic() - started

    background = [asyncio.create_task(submit_steadily()), asyncio.create_task(watch_connection())]
    try:
        for _ in range(3):
            took = await asyncio.gather(*(read(t) for t in (0.2, 0.5, 1.0) * 10))
            assert max(took) < 1.0 + 1.0, took
        await asyncio.sleep(1.0)  # a broken connection shows within moments
    finally:
        stop.set()
        await asyncio.gather(*background)
    assert disconnected == []
    # Every submit succeeded; scans share the process and the socket, so they slow submits
    # down (figures in docs/reliability.md) but never past the publish timeout.
    assert len(submitted) >= 3
    assert max(latencies) < 10.0  # JobQueue's default publish_timeout
    print(f"{len(submitted)} submits during the reads, slowest {max(latencies):.2f}s")
    stats = await client.get_queue_stats([client.queue_name])
    assert stats["connected"] is True
    assert stats["queues"][client.queue_name]["message_count"] == len(submitted)


def test_many_unknown_operation_reads_never_make_the_api_refuse_work(
    big_stream: tuple[str, str], api_process: ApiFactory, offloading_env: dict[str, str]
) -> None:
    url, _ = big_stream
    api = api_process("api-reads", {**offloading_env, "RABBITMQ_URL": url}).start(
        wait_for="/health"
    )

    async def scenario() -> tuple[list[int], list[float], list[int]]:
        async with httpx.AsyncClient(base_url=api.url, timeout=60) as http:

            async def read() -> tuple[int, float]:
                started = time.monotonic()
                job_id = job_id_at(time.time() - OLD_JOB_AGE)
                answer = await http.get(f"/operations/{job_id}?{API_VERSION}")
                return answer.status_code, time.monotonic() - started

            async def write(n: int) -> int:
                namespace = offloading_env["ITL_TEST_NAMESPACE"]
                answer = await http.put(
                    f"{resource_path(namespace, f'rg-{n}', 'ResourceGroup')}?{API_VERSION}",
                    json={"location": "westeurope", "properties": {}},
                )
                return answer.status_code

            reads = [asyncio.create_task(read()) for _ in range(50)]
            writes = []
            for n in range(20):
                writes.append(await write(n))
                await asyncio.sleep(0.1)
            done = await asyncio.gather(*reads)
            after = [await write(100 + n) for n in range(5)]
            return [code for code, _ in done], [took for _, took in done], writes + after

    read_codes, read_times, write_codes = asyncio.run(scenario())
    assert set(read_codes) == {200}, read_codes
    assert set(write_codes) == {202}, write_codes
    assert max(read_times) < 10, read_times  # LOOKUP_SECONDS each, some waiting for a turn
    assert httpx.get(api.url + "/health", timeout=5).status_code == 200
