"""Fault injection against real worker processes and a broker node of the suite's own.

Each scenario submits named jobs, injects its fault, waits until every accepted job has run,
then judges from the executions the workers recorded (``harness.verdict``): no job lost, no
duplicate unless a fault can explain it (those are counted and reported), no slot held at the
end, every bad message in the DLQ and nowhere else.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path

import aio_pika
import pytest

from itl_controlplane_sdk.workers import JobQueue, JobStatus
from itl_controlplane_sdk.workers.envelope import JobEnvelope, new_job_id
from itl_harness.rabbitmq_node import RabbitmqNode
from tests.chaos.conftest import WorkerFactory
from tests.chaos.harness import (
    PacedProducer,
    all_ran,
    assert_no_stuck_slots,
    executions,
    job_request,
    submit,
    submit_all,
    verdict,
    wait_until,
)
from tests.chaos.recorder import NAMESPACE, RESOURCE_TYPE

pytestmark = pytest.mark.chaos

both_protocols = pytest.mark.parametrize("results_protocol", ["amqp", "stream"])
"""Scenarios whose results matter run over both results protocols (RESULTS_PROTOCOL)."""


@both_protocols
async def test_high_concurrency_without_faults_runs_every_job_once(
    producer: JobQueue, workers: WorkerFactory, record_dir: Path
) -> None:
    fleet = [
        workers("wide", MAX_CONCURRENT_JOBS="200"),
        workers("medium", MAX_CONCURRENT_JOBS="50"),
        workers("narrow", MAX_CONCURRENT_JOBS="1"),
    ]
    rng = random.Random(12)
    names = [f"job-{n}" for n in range(3000)]
    started = time.monotonic()
    await submit_all(
        producer, names, lambda: rng.choice((0.0, 0.0, rng.random() * 0.3, rng.random()))
    )
    await wait_until(all_ran(record_dir, names), 300, "every job to run")
    elapsed = time.monotonic() - started
    await asyncio.sleep(2.0)  # a redelivery after a channel error would show by now
    verdict("high-concurrency", record_dir, names, faults=False, seconds=round(elapsed, 1))
    await wait_until(lambda: all(w.status()["in_flight"] == 0 for w in fleet), 30, "idle workers")
    assert_no_stuck_slots(fleet)

    # Many readers, each on its own connection, agree on every result.
    sample = [await submit(producer, f"read-{n}") for n in range(100)]
    readers = [
        JobQueue(
            producer.rabbitmq_url,
            queue_name=producer.queue_name,
            results_protocol=producer.results_protocol,
            results_stream_port=producer.results_stream_port,
        )
        for _ in range(5)
    ]
    for reader in readers:
        await reader.connect()
    try:
        answers = [
            await asyncio.gather(*(reader.get_result(job, timeout=60) for job in sample))
            for reader in readers
        ]
    finally:
        for reader in readers:
            await reader.disconnect()
    first = answers[0]
    assert all(r is not None and r.status is JobStatus.COMPLETED for r in first)
    for other in answers[1:]:
        assert [r.to_dict() if r else None for r in other] == [
            r.to_dict() if r else None for r in first
        ]


def poison_corpus() -> list[tuple[bytes, str | None]]:
    """(body, content type) of messages no worker may run; each must reach the DLQ."""
    good = JobEnvelope(
        job_id=new_job_id(),
        provider_namespace=NAMESPACE,
        resource_type=RESOURCE_TYPE,
        operation="create",
        request=job_request("poison-labelled"),
    ).to_json()
    json_type = "application/json"
    return [
        (b"[" * 5000 + b"]" * 5000, json_type),
        (b'{"a":' * 20000 + b"1" + b"}" * 20000, json_type),
        (b'{"job_id": "' + b"x" * (3 * 1024 * 1024) + b'"}', json_type),
        (good, "text/plain"),
        (good, None),
        (good, "application/xml"),
        (good.decode().encode("utf-16"), json_type),
        (b"\xff\xfe\xfd", json_type),
        (good.replace(b'"version":1', b'"version":7'), json_type),
        (good.replace(b'"priority":5', b'"priority":"high"'), json_type),
        (good.replace(b'"operation":"create"', b'"operation":["create"]'), json_type),
        (b"[]", json_type),
        (b"null", json_type),
        (b"", json_type),
        (b"not json", json_type),
    ]


async def test_poison_corpus_interleaved_with_good_jobs(
    producer: JobQueue, workers: WorkerFactory, record_dir: Path, chaos_broker: RabbitmqNode
) -> None:
    worker = workers("poisoned", MAX_CONCURRENT_JOBS="2")
    corpus = poison_corpus()
    names = [f"good-{n}" for n in range(150)]
    connection = await aio_pika.connect(chaos_broker.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        poison = iter(enumerate(corpus))
        for n, name in enumerate(names):
            await submit(producer, name)
            if n % 10 == 0 and (item := next(poison, None)) is not None:
                index, (body, content_type) = item
                await channel.default_exchange.publish(
                    aio_pika.Message(body, content_type=content_type, message_id=f"poison-{index}"),
                    routing_key=producer.queue_name,
                )
    await wait_until(all_ran(record_dir, names), 120, "every good job to run")
    dead: list[dict[str, object]] = []

    async def dead_lettered() -> bool:
        dead[:] = await producer.get_dlq_messages(limit=100)
        return len(dead) >= len(corpus)

    deadline = time.monotonic() + 30
    while not await dead_lettered() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    reasons = {str(m["job_id"]): str(m["reason"]) for m in dead}
    assert set(reasons) == {f"poison-{n}" for n in range(len(corpus))}, reasons
    assert all(reasons.values())
    verdict("poison-corpus", record_dir, names, faults=False, poison=len(corpus))
    assert "poison-labelled" not in executions(record_dir)
    stats = await producer.get_queue_stats([producer.queue_name])
    assert stats["queues"][producer.queue_name]["message_count"] == 0
    assert_no_stuck_slots([worker])
    assert worker.get("/health")[0] == 200


async def test_sigkill_storm_loses_nothing(
    producer: JobQueue, workers: WorkerFactory, record_dir: Path
) -> None:
    rng = random.Random(3)
    fleet = [workers(f"storm-{n}", MAX_CONCURRENT_JOBS="20") for n in range(3)]
    paced = PacedProducer(producer, interval=0.01, longest=0.3)
    produce = asyncio.create_task(paced.run(1500))
    kills = 0

    def kill_and_replace(victim: int) -> None:  # in a thread: the producer keeps its pace
        fleet[victim].signal(signal.SIGKILL)
        fleet[victim].wait(10)
        # Not waiting for it to be healthy: the next kill may hit a worker still starting.
        fleet[victim] = workers(f"storm-{kills + 3}", MAX_CONCURRENT_JOBS="20", wait_healthy=0)

    while not produce.done():
        await asyncio.sleep(1.0)
        await asyncio.to_thread(kill_and_replace, rng.randrange(len(fleet)))
        kills += 1
    await produce
    for worker in fleet:
        await asyncio.to_thread(worker.wait_healthy, 60)
    await wait_until(all_ran(record_dir, paced.accepted), 180, "every accepted job to run")
    assert paced.refused == []
    await asyncio.sleep(1.0)
    verdict("sigkill-storm", record_dir, paced.accepted, faults=True, kills=kills)
    await wait_until(lambda: all(w.status()["in_flight"] == 0 for w in fleet), 60, "idle workers")
    assert_no_stuck_slots(fleet)


@both_protocols
async def test_broker_stop_start_and_kill_under_a_paced_producer(
    producer: JobQueue, workers: WorkerFactory, record_dir: Path, chaos_broker: RabbitmqNode
) -> None:
    fleet = [workers(f"outage-{n}", MAX_CONCURRENT_JOBS="10") for n in range(2)]
    paced = PacedProducer(producer, interval=0.05, longest=0.2)
    produce = asyncio.create_task(paced.run(2000))
    await asyncio.sleep(4)
    await asyncio.to_thread(chaos_broker.stop_app)
    await asyncio.sleep(2)
    await asyncio.to_thread(chaos_broker.start_app)
    await asyncio.sleep(5)
    await asyncio.to_thread(chaos_broker.kill)
    await asyncio.sleep(1)
    await asyncio.to_thread(chaos_broker.up)
    paced.stop()
    await produce
    # Back up: the producer's connection recovers by itself and every submit is accepted.
    assert await producer.wait_until_connected(60)
    after = PacedProducer(producer, interval=0.02, longest=0.2, prefix="after")
    await after.run(200)
    assert after.refused == []
    accepted = paced.accepted + after.accepted
    await wait_until(all_ran(record_dir, accepted), 180, "every accepted job to run")
    await asyncio.sleep(1.0)
    verdict(
        "broker-stop-start-kill",
        record_dir,
        accepted,
        faults=True,
        maybe=paced.refused,
        refused_submits=len(paced.refused),
    )
    for worker in fleet:
        await asyncio.to_thread(worker.wait_healthy, 60)
    await wait_until(lambda: all(w.status()["in_flight"] == 0 for w in fleet), 60, "idle workers")
    assert_no_stuck_slots(fleet)


async def test_sigterm_drains_in_flight_jobs_without_duplicates(
    producer: JobQueue, workers: WorkerFactory, record_dir: Path
) -> None:
    first = workers("drained", MAX_CONCURRENT_JOBS="5")
    names = [f"drain-{n}" for n in range(25)]
    await submit_all(producer, names, lambda: 1.0)
    await wait_until(lambda: first.status()["in_flight"] == 5, 30, "five running jobs")
    first.signal(signal.SIGTERM)
    assert await asyncio.to_thread(first.wait, 60) == 0
    finished_by_first = set(executions(record_dir))
    assert len(finished_by_first) >= 5  # the in-flight jobs finished before the exit
    second = workers("successor", MAX_CONCURRENT_JOBS="5")
    await wait_until(all_ran(record_dir, names), 120, "every job to run")
    await asyncio.sleep(1.0)
    verdict("sigterm-drain", record_dir, names, faults=False, drained=len(finished_by_first))
    assert_no_stuck_slots([second])
