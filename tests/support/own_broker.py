"""A RabbitMQ node of a test's own: the one a test may stop, kill or start with other settings.

The node (``itl_harness.rabbitmq_node``) runs at the script's defaults: settings of the
caller's environment that would change its runtime are left out, so what a test observes is
what the script gives every broker of development, CI and the benchmarks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from itl_harness.rabbitmq_node import RabbitmqNode
from tests.support.services import unavailable

RUNTIME_OVERRIDES = (
    "RABBITMQ_SCHEDULER_BIND_TYPE",
    "RABBITMQ_SCHEDULER_BUSY_WAIT_THRESHOLD",
    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
    "RABBITMQ_SERVER_ERL_ARGS",
)
"""What would override the script's Erlang runtime defaults."""


def own_node(home: Path, name: str, *, extra_conf: Path | None = None) -> RabbitmqNode:
    """A node of the test's own, with none of the caller's runtime overrides."""
    environment = {k: v for k, v in os.environ.items() if k not in RUNTIME_OVERRIDES}
    return RabbitmqNode(home, name, extra_conf=extra_conf, base_env=environment)


@contextmanager
def running(node: RabbitmqNode) -> Iterator[RabbitmqNode]:
    """The node started for the block and removed after it; a machine without RabbitMQ, or a
    node that cannot start, is the missing service (a skip, a failure under CI=true)."""
    if shutil.which("rabbitmq-server", path="/usr/lib/rabbitmq/bin:/usr/sbin") is None:
        unavailable("RabbitMQ", "rabbitmq-server is not installed (make install)")
    try:
        node.up()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        node.down()
        unavailable("RabbitMQ node", f"{exc.stdout!r} {exc.stderr!r}")
    try:
        yield node
    finally:
        node.down()
