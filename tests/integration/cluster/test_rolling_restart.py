"""A rolling restart of all three nodes under steady load, as an upgrade or the RabbitMQ
cluster operator does it: one node at a time is stopped cleanly and started again, and the
next one goes only once it is back in the cluster.

A worker runs jobs and a producer submits them the whole time; both fail over as their nodes
go. Afterwards two fresh processes on different nodes read every job's result: none may be
missing. The node leading ``provider.results`` goes last, the order docs/operations.md
recommends for planned maintenance.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from itl_controlplane_sdk.workers import JobQueue
from itl_harness.workers import WorkerProcess
from tests.integration.cluster.test_node_failures import (
    SteadyLoad,
    all_results,
    assert_none_lost,
    other_nodes,
    results_leader,
)
from tests.support.cluster import RabbitMQCluster

# Six node stops and starts: about a minute on an idle machine, several at a load average of 60.
pytestmark = pytest.mark.timeout(900)

FAILOVER = 30.0
"""Longest a submission may wait to be accepted while the producer's node stops and queues
elect leaders (seconds). ``submit_job`` itself holds a nacked job for up to its
``publish_timeout`` (10 s); the load retries what it refuses. On a quiet machine no submission
waits more than a second."""


async def test_a_rolling_restart_of_every_node_under_load_loses_no_job(
    rabbitmq_cluster: RabbitMQCluster,
    cluster_job_queue: Callable[..., Any],
    cluster_worker: Callable[..., WorkerProcess],
) -> None:
    started = time.monotonic()
    last = results_leader(rabbitmq_cluster)
    order = [*other_nodes(last), last]
    producer: JobQueue = await cluster_job_queue(order[0])
    worker = cluster_worker("w-rolling", first=order[1], MAX_CONCURRENT_JOBS="10").start()

    load = SteadyLoad(producer, accept_within=FAILOVER).start()
    await load.submitted(40)
    for node in order:
        # The blocking script runs in a thread, so the producer keeps submitting meanwhile.
        await asyncio.to_thread(rabbitmq_cluster.stop, node)
        await load.submitted(len(load.job_ids) + 20, timeout=FAILOVER)
        await asyncio.to_thread(rabbitmq_cluster.start, node)
        await load.submitted(len(load.job_ids) + 20, timeout=FAILOVER)
    job_ids = await load.stop()
    restarted = time.monotonic()
    print(
        f"{len(job_ids)} jobs; the longest a submission waited: {load.longest_wait:.1f}s; "
        f"restarts done after {restarted - started:.0f}s"
    )

    # Readers tail the stream from just before the test: every job of it, none of older tests.
    lookback = time.monotonic() - started + 60
    for reader_node in (order[0], last):
        reader: JobQueue = await cluster_job_queue(reader_node, result_lookback=lookback)
        await assert_none_lost(await all_results(reader, job_ids), worker, reader)
    print(f"every result read twice after {time.monotonic() - restarted:.0f}s more")
    assert "next attempt goes to" in worker.log(), "the worker never had to fail over"
