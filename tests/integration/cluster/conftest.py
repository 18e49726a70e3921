"""Fixtures for tests against the local 3-node RabbitMQ cluster (``make rabbitmq-cluster-up``).

Every test starts with all three nodes up (a node a previous test killed is started again), so
tests can kill and restart nodes freely.
"""

from __future__ import annotations

import pytest

from tests.support.cluster import RabbitMQCluster, require_cluster

pytestmark = pytest.mark.integration


@pytest.fixture
def rabbitmq_cluster() -> RabbitMQCluster:
    return require_cluster()
