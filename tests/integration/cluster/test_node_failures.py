"""Node loss on the real 3-node cluster, in replicated mode, under steady load.

Each test runs a real worker process and a producer submitting jobs at a steady rate, breaks
the cluster while jobs are in flight, and then reads every job's result from a fresh process
connected to another node: no job may be lost. Jobs may run twice (at-least-once delivery);
the first result recorded wins everywhere.

One test kills the node leading the ``provider.results`` stream while the worker writes results
from another node: every result the worker had confirmed must be readable afterwards
(docs/reliability.md, "Results through a stream leader change").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from itl_controlplane_sdk.contract.topology import RESULTS_STREAM
from itl_controlplane_sdk.errors import BrokerUnavailableError, JobSubmissionError
from itl_controlplane_sdk.workers import JobQueue, JobStatus
from itl_controlplane_sdk.workers.envelope import new_job_id
from itl_harness.workers import WorkerProcess
from tests.support.cluster import NODES, RabbitMQCluster
from tests.support.requests import demo_request

RATE_PER_SECOND = 40
RESULT_LOOKBACK = 900.0
"""Readers tail the results stream from this far back, so every job of a test is in the tail
(a job older than the tail costs a scan of its own)."""


class SteadyLoad:
    """Submits jobs at a steady rate until stopped; a submission the broker refuses during a
    failover is retried with the same job id, as a client would."""

    def __init__(
        self, producer: JobQueue, rate: float = RATE_PER_SECOND, accept_within: float = 60
    ) -> None:
        self.producer = producer
        self.rate = rate
        self.accept_within = accept_within
        self.job_ids: list[str] = []
        self.retried = 0
        self.longest_wait = 0.0
        """The longest a submission waited to be accepted (seconds), failover included."""
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> SteadyLoad:
        self._task = asyncio.create_task(self._run())
        return self

    async def submitted(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.job_ids) < count:
            assert time.monotonic() < deadline, f"only {len(self.job_ids)} jobs submitted"
            await asyncio.sleep(0.05)

    async def stop(self) -> list[str]:
        self._stop.set()
        assert self._task is not None
        await self._task
        return self.job_ids

    async def _run(self) -> None:
        index = 0
        while not self._stop.is_set():
            job_id = new_job_id()
            await self._submit(job_id, index)
            self.job_ids.append(job_id)
            index += 1
            await asyncio.sleep(1 / self.rate)

    async def _submit(self, job_id: str, index: int) -> None:
        started = time.monotonic()
        deadline = started + self.accept_within
        while True:
            try:
                await self.producer.submit_job(
                    "ITL.Demo",
                    "Job",
                    "create",
                    demo_request(f"load-{index}", seconds=0.05),
                    job_id=job_id,
                )
                self.longest_wait = max(self.longest_wait, time.monotonic() - started)
                return
            except (BrokerUnavailableError, JobSubmissionError):
                assert time.monotonic() < deadline, (
                    f"job {job_id} not accepted for {self.accept_within} s"
                )
                self.retried += 1
                await asyncio.sleep(0.2)


async def all_results(reader: JobQueue, job_ids: list[str]) -> dict[str, JobStatus | None]:
    results = await asyncio.gather(*(reader.get_result(job_id, timeout=90) for job_id in job_ids))
    return {
        job_id: (result.status if result is not None else None)
        for job_id, result in zip(job_ids, results, strict=True)
    }


async def assert_none_lost(
    statuses: dict[str, JobStatus | None], worker: WorkerProcess, reader: JobQueue
) -> None:
    lost = [job_id for job_id, status in statuses.items() if status is None]
    failed = [job_id for job_id, status in statuses.items() if status is JobStatus.FAILED]
    if lost:
        stats = await reader.get_queue_stats()
        dead = [m for m in await reader.get_dlq_messages(10_000) if m["job_id"] in lost]
        raise AssertionError(
            f"{len(lost)} of {len(statuses)} jobs without a result: {lost[:10]}\n"
            f"queues: {stats}\ndead letters: {dead[:3]}\n{worker.log()[-4000:]}"
        )
    assert not failed, f"{len(failed)} jobs failed:\n{worker.log()[-4000:]}"


def results_leader(cluster: RabbitMQCluster, via: int = 1) -> int:
    return cluster.queue_leader(RESULTS_STREAM, via=via)


def other_nodes(*nodes: int) -> list[int]:
    return [node for node in NODES if node not in nodes]


async def wait_for_connection(
    cluster: RabbitMQCluster, node: int, name: str, timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    while name not in cluster.connections_on(node):
        assert time.monotonic() < deadline, f"{name!r} never connected to node {node}"
        await asyncio.sleep(0.5)


async def test_sigkill_of_the_workers_node_loses_no_job(
    rabbitmq_cluster: RabbitMQCluster,
    cluster_queue: str,
    cluster_job_queue: Callable[..., Any],
    cluster_worker: Callable[..., WorkerProcess],
) -> None:
    producer_node, victim = other_nodes(results_leader(rabbitmq_cluster))
    producer: JobQueue = await cluster_job_queue(producer_node)
    worker = cluster_worker("w-kill", first=victim, MAX_CONCURRENT_JOBS="10").start()
    await wait_for_connection(rabbitmq_cluster, victim, f"itl-jobqueue {cluster_queue}")

    load = SteadyLoad(producer).start()
    await load.submitted(80)
    rabbitmq_cluster.kill(victim)
    await load.submitted(len(load.job_ids) + 120)
    job_ids = await load.stop()

    reader: JobQueue = await cluster_job_queue(
        results_leader(rabbitmq_cluster, via=producer_node), result_lookback=RESULT_LOOKBACK
    )
    await assert_none_lost(await all_results(reader, job_ids), worker, reader)
    assert "next attempt goes to" in worker.log()


async def test_killing_the_quorum_leader_loses_no_job(
    rabbitmq_cluster: RabbitMQCluster,
    cluster_queue: str,
    cluster_job_queue: Callable[..., Any],
    cluster_worker: Callable[..., WorkerProcess],
) -> None:
    results = results_leader(rabbitmq_cluster)
    # A quorum queue's first leader is the node its declaration came through.
    await cluster_job_queue(other_nodes(results)[0])
    leader = rabbitmq_cluster.queue_leader(cluster_queue)
    assert leader != results
    producer_node, worker_node = other_nodes(leader)
    producer: JobQueue = await cluster_job_queue(producer_node)
    worker = cluster_worker("w-leader", first=worker_node, MAX_CONCURRENT_JOBS="10").start()

    load = SteadyLoad(producer).start()
    await load.submitted(80)
    rabbitmq_cluster.kill(leader)
    await load.submitted(len(load.job_ids) + 120)
    job_ids = await load.stop()

    assert rabbitmq_cluster.queue_leader(cluster_queue, via=producer_node) != leader
    reader: JobQueue = await cluster_job_queue(worker_node, result_lookback=RESULT_LOOKBACK)
    await assert_none_lost(await all_results(reader, job_ids), worker, reader)


@pytest.mark.parametrize("results_protocol", ["amqp", "stream"])
async def test_killing_the_results_streams_leader_loses_no_result(
    rabbitmq_cluster: RabbitMQCluster,
    cluster_queue: str,
    cluster_job_queue: Callable[..., Any],
    cluster_worker: Callable[..., WorkerProcess],
    results_protocol: str,
) -> None:
    leader = results_leader(rabbitmq_cluster)
    producer_node, worker_node = other_nodes(leader)
    producer: JobQueue = await cluster_job_queue(producer_node)
    # The worker stays connected through the kill: its results in flight to the old leader,
    # and every later one, must be written by the new one.
    worker = cluster_worker(
        "w-results",
        first=worker_node,
        MAX_CONCURRENT_JOBS="10",
        RESULTS_PROTOCOL=results_protocol,
    ).start()
    await wait_for_connection(rabbitmq_cluster, worker_node, f"itl-jobqueue {cluster_queue}")

    load = SteadyLoad(producer).start()
    await load.submitted(120)
    rabbitmq_cluster.kill(leader)
    await load.submitted(len(load.job_ids) + 200)
    job_ids = await load.stop()

    assert results_leader(rabbitmq_cluster, via=producer_node) != leader
    for reader_node in (producer_node, worker_node):
        reader: JobQueue = await cluster_job_queue(
            reader_node, result_lookback=RESULT_LOOKBACK, results_protocol=results_protocol
        )
        await assert_none_lost(await all_results(reader, job_ids), worker, reader)
