"""cluster.sh itself: a killed node is reported down, comes back, and rejoins the cluster."""

from __future__ import annotations

import os

import aio_pika

from tests.support.cluster import RabbitMQCluster


async def test_a_killed_node_comes_back_into_the_cluster(rabbitmq_cluster: RabbitMQCluster) -> None:
    rabbitmq_cluster.kill(3)
    assert not rabbitmq_cluster.running()
    connection = await aio_pika.connect(rabbitmq_cluster.url(1))
    await connection.close()

    rabbitmq_cluster.start(3)

    assert rabbitmq_cluster.running()
    status = rabbitmq_cluster.ctl(3, "-q", "cluster_status", "--formatter", "json")
    prefix = os.environ.get("ITL_CLUSTER_NODE_PREFIX", "itl-cluster")
    assert all(f"{prefix}-{node}@localhost" in status for node in (1, 2, 3))
    connection = await aio_pika.connect(rabbitmq_cluster.url(3))
    await connection.close()
