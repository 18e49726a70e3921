"""Queue depth through a node loss: the SDK's statistics and the autoscaler's broker reads
either report the true depth (summed over the priority bands) or say they cannot, never a
smaller number that would scale a pool down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from itl_controlplane_sdk.workers import JobQueue
from tests.support.cluster import RabbitMQCluster
from tests.support.requests import demo_request
from workerpool_operator.autoscaler import observe
from workerpool_operator.autoscaler.broker import BrokerHub

JOBS = 30


async def test_depth_is_exact_or_missing_through_the_loss_of_the_clients_node(
    rabbitmq_cluster: RabbitMQCluster, cluster_queue: str, cluster_job_queue: Callable[..., Any]
) -> None:
    producer: JobQueue = await cluster_job_queue(1)
    for index in range(JOBS):
        await producer.submit_job(
            "ITL.Demo", "Job", "create", demo_request(f"waiting-{index}"), index % 11
        )
    stats_client: JobQueue = await cluster_job_queue(1)
    hub = BrokerHub(read_timeout=2.0, retry_seconds=0.5)
    url = rabbitmq_cluster.urls_from(1)
    first = await hub.read(url, queue=cluster_queue, pool="t/p", queue_type="replicated")
    assert isinstance(first.reading, observe.QueueReading)
    assert first.reading.ready == JOBS

    rabbitmq_cluster.kill(1)  # the node both clients are on, and the queues' first leader

    sdk_depths: list[int | None] = []
    hub_depths: list[int | None] = []
    deadline = time.monotonic() + 40
    try:
        while time.monotonic() < deadline:
            stats = await stats_client.get_queue_stats()
            entry = stats["queues"].get(cluster_queue, {}) if stats["connected"] else {}
            sdk_depths.append(entry.get("message_count"))
            read = await hub.read(url, queue=cluster_queue, pool="t/p", queue_type="replicated")
            reading = read.reading
            hub_depths.append(reading.ready if isinstance(reading, observe.QueueReading) else None)
            if sdk_depths[-1] is not None and hub_depths[-1] is not None and len(sdk_depths) > 3:
                break
            await asyncio.sleep(0.2)
    finally:
        await hub.close()

    assert {depth for depth in sdk_depths if depth is not None} == {JOBS}, sdk_depths
    assert {depth for depth in hub_depths if depth is not None} == {JOBS}, hub_depths
    assert sdk_depths[-1] == JOBS and hub_depths[-1] == JOBS, "depth never readable again"
