"""Submit -> worker -> result, and reading results from other processes."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
import time
from typing import Any

import pytest

from itl_controlplane_sdk import ResourceProviderRegistry
from itl_controlplane_sdk.contract.settings import ResultsProtocol
from itl_controlplane_sdk.contract.topology import RESULTS_STREAM
from itl_controlplane_sdk.providers.examples import register_example_providers
from itl_controlplane_sdk.workers import (
    BrokerUnavailableError,
    JobQueue,
    JobStatus,
    JobSubmissionError,
    ProviderWorker,
    result_store,
)
from itl_controlplane_sdk.workers.envelope import new_job_id
from itl_controlplane_sdk.workers.queue import AUTO_PROBE_TIMEOUT
from itl_controlplane_sdk.workers.stream_results import (
    ResultAppender,
    StreamEndpoint,
    StreamEndpoints,
    StreamUnusable,
)
from itl_harness.workers import free_port
from tests.integration.sdk.conftest import ALL_JOBS, StartWorker
from tests.support.requests import demo_request
from tests.support.services import require_rabbitmq_stream

pytestmark = pytest.mark.integration

both_protocols = pytest.mark.parametrize("results_protocol", ["amqp", "stream"])
"""The result-path tests run over both results protocols (RESULTS_PROTOCOL)."""


@both_protocols
async def test_submitted_job_is_processed_and_its_result_returned(
    producer: JobQueue, start_worker: StartWorker
) -> None:
    await start_worker()
    job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request(x=1))

    result = await producer.get_result(job_id, timeout=10)

    assert result is not None
    assert result.status is JobStatus.COMPLETED
    assert result.result is not None
    assert result.result["properties"]["echo"] == {"x": 1}
    assert result.result["id"].endswith("/providers/ITL.Demo/Job/job")


@both_protocols
async def test_start_consuming_jobs_starts_a_worker_that_was_not_started(
    rabbitmq_url: str, queue_name: str, producer: JobQueue, queue_options: Any
) -> None:
    registry = ResourceProviderRegistry()
    register_example_providers(registry)
    worker = ProviderWorker(
        "upstream-style",
        registry,
        JobQueue(rabbitmq_url, queue_name=queue_name, bindings=ALL_JOBS, **queue_options),
    )
    try:
        await worker.start_consuming_jobs()  # no start() first, as upstream callers do
        job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request())
        result = await producer.get_result(job_id, timeout=10)
    finally:
        await worker.stop()
        await worker.job_queue.disconnect()

    assert worker.jobs_processed == 1
    assert result is not None and result.status is JobStatus.COMPLETED


@both_protocols
async def test_result_is_readable_from_a_queue_connected_after_it_was_published(
    rabbitmq_url: str,
    queue_name: str,
    producer: JobQueue,
    start_worker: StartWorker,
    queue_options: Any,
) -> None:
    await start_worker()
    job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request())
    assert await producer.get_result(job_id, timeout=10) is not None

    late = JobQueue(
        rabbitmq_url, queue_name=queue_name, bindings=ALL_JOBS, result_lookback=0, **queue_options
    )
    await late.connect()
    try:
        result = await late.get_result(job_id, timeout=10)
    finally:
        await late.disconnect()

    assert result is not None
    assert result.job_id == job_id
    assert result.status is JobStatus.COMPLETED


@both_protocols
async def test_result_is_readable_from_another_process(
    rabbitmq_url: str, producer: JobQueue, start_worker: StartWorker, queue_options: Any
) -> None:
    await start_worker()
    job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request())
    assert await producer.get_result(job_id, timeout=10) is not None
    script = (
        "import asyncio, json, sys\n"
        "from itl_controlplane_sdk.workers import JobQueue\n"
        "async def main():\n"
        "    q = JobQueue(sys.argv[1], declare_topology=False, results_protocol=sys.argv[3],\n"
        "                 results_stream_port=int(sys.argv[4]))\n"
        "    await q.connect()\n"
        "    r = await q.get_result(sys.argv[2], timeout=10)\n"
        "    await q.disconnect()\n"
        "    print(json.dumps(r.to_dict() if r else None))\n"
        "asyncio.run(main())\n"
    )

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        rabbitmq_url,
        job_id,
        queue_options["results_protocol"],
        str(queue_options["results_stream_port"]),
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0

    printed = json.loads(stdout.decode().strip().splitlines()[-1])
    assert printed["job_id"] == job_id
    assert printed["status"] == "completed"


@both_protocols
async def test_result_cache_is_bounded_and_evicted_results_are_still_found(
    rabbitmq_url: str, queue_name: str, start_worker: StartWorker, queue_options: Any
) -> None:
    await start_worker(max_concurrent_jobs=10)
    queue = JobQueue(
        rabbitmq_url, queue_name=queue_name, bindings=ALL_JOBS, result_cache_size=5, **queue_options
    )
    await queue.connect()
    try:
        job_ids = [
            await queue.submit_job("ITL.Demo", "Job", "create", demo_request(f"j{i}"))
            for i in range(20)
        ]
        results = await asyncio.gather(*(queue.get_result(j, timeout=15) for j in job_ids))
        assert all(r is not None and r.status is JobStatus.COMPLETED for r in results)
        reader = await queue._result_reader()
        assert reader.cached <= 5

        first = await queue.get_result(job_ids[0], timeout=10)
    finally:
        await queue.disconnect()

    assert first is not None and first.job_id == job_ids[0]


async def test_a_reader_that_starts_on_a_busy_history_answers_new_jobs_from_its_tail(
    rabbitmq_url: str,
    rabbitmq_stream_port: int,
    queue_name: str,
    start_worker: StartWorker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An API process that starts on a busy system reads more results of its look-back window
    # than its cache holds. Evicting them must not make it scan the stream's history for the
    # jobs submitted after they were stored: each scan reads thousands of records.
    monkeypatch.setattr(result_store, "CLOCK_SKEW_SECONDS", 1.0)  # one clock here
    options: dict[str, Any] = {
        "results_protocol": "stream",
        "results_stream_port": rabbitmq_stream_port,
    }
    require_rabbitmq_stream(rabbitmq_url, rabbitmq_stream_port)
    await start_worker(max_concurrent_jobs=10)
    producer = JobQueue(rabbitmq_url, queue_name=queue_name, bindings=ALL_JOBS, **options)
    await producer.connect()
    observer = JobQueue(
        rabbitmq_url, queue_name=queue_name, bindings=ALL_JOBS, result_cache_size=5, **options
    )
    try:
        history = [
            await producer.submit_job("ITL.Demo", "Job", "create", demo_request(f"h{i}"))
            for i in range(20)
        ]
        assert all(await asyncio.gather(*(producer.get_result(j, timeout=15) for j in history)))
        # Older than the clock skew the reader allows for, so the cache can vouch for later jobs.
        await asyncio.sleep(1.5)
        await observer.connect()
        reader = await observer._result_reader()
        deadline = time.monotonic() + 15
        while reader.peek(history[-1]) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert reader.peek(history[-1]) is not None, "the reader never read the history"
        assert reader.cached == 5

        job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request("new"))
        result = await observer.get_result(job_id, timeout=15)
    finally:
        await observer.disconnect()
        await producer.disconnect()

    assert result is not None and result.status is JobStatus.COMPLETED
    assert reader.scans_started == 0


@both_protocols
async def test_results_nobody_waited_for_are_served_from_the_tail(
    rabbitmq_url: str, queue_name: str, start_worker: StartWorker, queue_options: Any
) -> None:
    await start_worker(max_concurrent_jobs=10)
    observer = JobQueue(rabbitmq_url, queue_name=queue_name, bindings=ALL_JOBS, **queue_options)
    await observer.connect()
    producer = JobQueue(rabbitmq_url, queue_name=queue_name, bindings=ALL_JOBS, **queue_options)
    await producer.connect()
    try:
        reader = await observer._result_reader()  # tailing before the jobs exist
        job_ids = [
            await producer.submit_job("ITL.Demo", "Job", "create", demo_request(f"t{i}"))
            for i in range(5)
        ]
        for job_id in job_ids:
            assert await producer.get_result(job_id, timeout=15) is not None
        deadline = time.monotonic() + 10
        while reader.cached < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        # timeout=0: only what the tail already holds, no stream scan.
        held = [await observer.get_result(job_id, timeout=0) for job_id in job_ids]
        # A second terminal result for the same job (a late cancel) does not replace it.
        await observer.cancel_job(job_ids[0], "too late")
        again = await observer.get_result(job_ids[0], timeout=0)
    finally:
        await producer.disconnect()
        await observer.disconnect()

    assert [r.job_id if r else None for r in held] == job_ids
    assert all(r is not None and r.status is JobStatus.COMPLETED for r in held)
    assert again is not None and again.status is JobStatus.COMPLETED


@both_protocols
async def test_get_result_returns_none_when_no_result_comes(producer: JobQueue) -> None:
    job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request())

    assert await producer.get_result(job_id, timeout=0.5) is None


async def test_job_that_no_queue_accepts_raises_instead_of_vanishing(
    rabbitmq_url: str, queue_name: str
) -> None:
    # A dedicated queue that claims only ITL.Only jobs, and no catch-all queue bound to the
    # alternate exchange in this vhost: a job for another provider has nowhere to go.
    import aio_pika

    default = JobQueue(rabbitmq_url)  # make sure the catch-all exists, then detach it
    await default.connect()
    await default.disconnect()
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        catch_all = await channel.get_queue("provider.jobs")
        await catch_all.unbind("provider.unrouted", "")
    queue = JobQueue(rabbitmq_url, queue_name=queue_name, bindings=("provider.ITL.Only.#",))
    await queue.connect()
    try:
        with pytest.raises(JobSubmissionError, match="no queue is bound"):
            await queue.submit_job("ITL.Nowhere", "Thing", "create", demo_request())
        accepted = await queue.submit_job("ITL.Only", "Thing", "create", demo_request())
        assert accepted
    finally:
        await queue.disconnect()
        restore = JobQueue(rabbitmq_url)
        await restore.connect()
        await restore.disconnect()


async def test_a_job_waits_in_its_queue_as_a_persistent_message_named_by_its_id(
    rabbitmq_url: str, queue_name: str, producer: JobQueue
) -> None:
    # What survives a broker restart and what a redrive or an operator reading the queue sees:
    # persistent, the job id as message id, the priority and the submit time as properties.
    import aio_pika

    before = int(time.time())
    job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request(), priority=7)

    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name)
        message = await queue.get(no_ack=True, timeout=5)
    assert message.delivery_mode is aio_pika.DeliveryMode.PERSISTENT
    assert message.message_id == job_id
    assert message.priority == 7
    assert message.content_type == "application/json"
    assert message.timestamp is not None
    assert before <= message.timestamp.timestamp() <= time.time() + 1
    assert json.loads(message.body)["job_id"] == job_id


async def test_invalid_priority_and_operation_are_rejected(producer: JobQueue) -> None:
    with pytest.raises(ValueError, match="priority must be between 0 and 10"):
        await producer.submit_job("ITL.Demo", "Job", "create", demo_request(), priority=11)
    with pytest.raises(ValueError, match="operation must be one of"):
        await producer.submit_job("ITL.Demo", "Job", "explode", demo_request())


async def test_stream_protocol_without_its_port_fails_at_connect_naming_the_port(
    rabbitmq_url: str, queue_name: str
) -> None:
    closed = free_port()  # nothing listens there
    queue = JobQueue(
        rabbitmq_url,
        queue_name=queue_name,
        bindings=ALL_JOBS,
        results_protocol="stream",
        results_stream_port=closed,
    )
    with pytest.raises(
        BrokerUnavailableError, match=f"stream protocol at 127.0.0.1:{closed}.*rabbitmq_stream"
    ):
        await queue.connect()
    assert not queue.is_connected


async def test_auto_results_go_over_the_stream_protocol_when_the_broker_offers_it(
    rabbitmq_url: str,
    rabbitmq_stream_port: int,
    queue_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    require_rabbitmq_stream(rabbitmq_url, rabbitmq_stream_port)
    queue = JobQueue(rabbitmq_url, queue_name=queue_name, bindings=ALL_JOBS)  # the defaults
    with caplog.at_level(logging.INFO, logger="itl_controlplane_sdk.workers.queue"):
        await queue.connect()
    try:
        assert queue.results_protocol == "auto"
        assert queue.results_transport == "stream"
        assert f"results over the stream protocol at 127.0.0.1:{rabbitmq_stream_port}" in (
            caplog.text
        )
    finally:
        await queue.disconnect()


async def test_auto_falls_back_to_amqp_when_the_stream_port_does_not_answer(
    rabbitmq_url: str, queue_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    closed = free_port()  # a broker without the rabbitmq_stream plugin, as far as we can tell
    options: dict[str, Any] = {"bindings": ALL_JOBS, "results_stream_port": closed}
    producer = JobQueue(rabbitmq_url, queue_name=queue_name, **options)
    worker_queue = JobQueue(rabbitmq_url, queue_name=queue_name, **options)
    registry = ResourceProviderRegistry()
    register_example_providers(registry)
    worker = ProviderWorker("auto-fallback", registry, worker_queue)
    with caplog.at_level(logging.INFO, logger="itl_controlplane_sdk.workers.queue"):
        await producer.connect()
    try:
        await worker.start()
        await worker.start_consuming_jobs()
        assert producer.results_transport == worker_queue.results_transport == "amqp"
        assert f"results go over AMQP: the stream protocol at 127.0.0.1:{closed}" in caplog.text
        job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request())
        result = await producer.get_result(job_id, timeout=10)
    finally:
        await worker.stop()
        await worker_queue.disconnect()
        await producer.disconnect()
    assert result is not None and result.status is JobStatus.COMPLETED


async def test_auto_does_not_wait_long_for_a_stream_port_that_never_answers(
    rabbitmq_url: str, queue_name: str
) -> None:
    """A port that accepts and then says nothing (as behind a firewall that drops packets)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = silent.getsockname()[1]
    queue = JobQueue(
        rabbitmq_url, queue_name=queue_name, bindings=ALL_JOBS, results_stream_port=port
    )
    try:
        started = time.monotonic()
        await queue.connect()
        waited = time.monotonic() - started
        assert queue.results_transport == "amqp"
    finally:
        await queue.disconnect()
        silent.close()
    assert waited < AUTO_PROBE_TIMEOUT + 2, waited


async def test_a_stream_port_of_another_cluster_is_refused(
    rabbitmq_url: str, rabbitmq_stream_port: int
) -> None:
    """A port-forward or a wrong port can lead to another broker: results would go there."""
    require_rabbitmq_stream(rabbitmq_url, rabbitmq_stream_port)
    endpoint = StreamEndpoint.from_amqp_url(rabbitmq_url, rabbitmq_stream_port)
    appender = ResultAppender(
        StreamEndpoints([endpoint]), RESULTS_STREAM, timeout=10, name="test-other-cluster"
    )
    with pytest.raises(StreamUnusable, match="not of 'another-cluster'"):
        await appender.start(timeout=10, cluster_name="another-cluster")


@pytest.mark.parametrize(
    ("worker_protocol", "client_protocol"), [("amqp", "stream"), ("stream", "amqp")]
)
async def test_processes_on_different_results_protocols_share_one_results_stream(
    rabbitmq_url: str,
    rabbitmq_stream_port: int,
    queue_name: str,
    worker_protocol: ResultsProtocol,
    client_protocol: ResultsProtocol,
) -> None:
    """A fleet can move from one protocol to the other a process at a time (``auto`` may pick
    differently per process): results written over one are read over the other."""
    require_rabbitmq_stream(rabbitmq_url, rabbitmq_stream_port)
    producer = JobQueue(
        rabbitmq_url, queue_name=queue_name, bindings=ALL_JOBS, results_protocol=client_protocol
    )
    worker_queue = JobQueue(
        rabbitmq_url, queue_name=queue_name, bindings=ALL_JOBS, results_protocol=worker_protocol
    )
    registry = ResourceProviderRegistry()
    register_example_providers(registry)
    worker = ProviderWorker("mixed", registry, worker_queue)
    await producer.connect()
    try:
        await worker.start()
        await worker.start_consuming_jobs()
        assert (worker_queue.results_transport, producer.results_transport) == (
            worker_protocol,
            client_protocol,
        )
        jobs = [
            await producer.submit_job("ITL.Demo", "Job", "create", demo_request(n=n))
            for n in range(20)
        ]
        results = [await producer.get_result(job_id, timeout=10) for job_id in jobs]
        cancelled = await producer.cancel_job(new_job_id("sub-1"))
        seen_by_worker_side = await worker_queue.get_result(cancelled.job_id, timeout=10)
    finally:
        await worker.stop()
        await worker_queue.disconnect()
        await producer.disconnect()
    assert [r.status if r else None for r in results] == [JobStatus.COMPLETED] * 20
    assert [r.result["properties"]["echo"]["n"] for r in results if r and r.result] == list(
        range(20)
    )
    assert seen_by_worker_side is not None and seen_by_worker_side.status is cancelled.status
