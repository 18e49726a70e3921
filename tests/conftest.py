"""Fixtures shared by every test tier.

Services are real (DESIGN.md, "Tests that touch real things"). A test that cannot reach one is
skipped on a developer machine and FAILS under CI=true, so CI never goes green by skipping.
"""

from __future__ import annotations

import os

import pytest

from tests.support.services import require_rabbitmq

pytest_plugins = ["localcluster.pytest_plugin"]


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """AMQP URL of the local RabbitMQ (``make rabbitmq-up``), checked reachable."""
    url = os.environ.get("ITL_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    require_rabbitmq(url)
    return url
