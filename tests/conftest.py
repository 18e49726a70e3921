"""Fixtures shared by every test tier.

Services are real (docs/testing.md). A test that cannot reach one is skipped on a developer
machine and FAILS under CI=true, so CI never goes green by skipping. The local control plane's
fixtures come from the ``localcluster`` pytest plugin, registered by the package itself.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import aio_pika
import pytest

from itl_controlplane_sdk.contract.topology import DEAD_LETTER_QUEUE
from tests.support.services import require_rabbitmq


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """AMQP URL of the local RabbitMQ (``make rabbitmq-up``), checked reachable."""
    url = os.environ.get("ITL_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    require_rabbitmq(url)
    return url


@pytest.fixture(scope="session")
def rabbitmq_stream_port(rabbitmq_url: str) -> int:
    """The test broker's stream protocol port (``tools/rabbitmq/rabbitmq.sh``: AMQP port - 120)."""
    amqp_port = urlsplit(rabbitmq_url).port or 5672
    return int(os.environ.get("ITL_TEST_RABBITMQ_STREAM_PORT", str(amqp_port - 120)))


@pytest.fixture
async def clean_dlq(rabbitmq_url: str) -> None:
    """An empty dead-letter queue (it is shared by every test on the broker)."""
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        dlq = await channel.declare_queue(DEAD_LETTER_QUEUE, durable=True)
        await dlq.purge()
