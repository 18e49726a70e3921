"""A RabbitMQ node of one run, next to the shared broker, with the management API.

Benchmarks that must not load the shared broker (hundreds of queues polled every few
seconds), or that need the management plugin (KEDA's MessageRate mode reads the HTTP API),
start their own node with ``tools/rabbitmq/rabbitmq.sh`` under another node name, free
ports and a temporary data directory, and remove it at the end.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcluster import ports, wait_until

RABBITMQ_SCRIPT = Path(__file__).resolve().parents[1] / "rabbitmq" / "rabbitmq.sh"


@dataclass
class Broker:
    """Where the node listens and the environment ``rabbitmq.sh`` needs to reach it."""

    home: Path
    amqp_port: int
    http_port: int
    env: dict[str, str] = field(default_factory=dict)

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def http_url(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.http_port}/"

    def ctl(self, *args: str) -> str:
        """``rabbitmq.sh ARGS`` against this node (``up``, ``down``, ``ctl list_queues``...)."""
        done = subprocess.run(
            ["bash", str(RABBITMQ_SCRIPT), *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return done.stdout

    def queue(self, name: str) -> dict[str, Any]:
        """The management API's view of a queue (counters such as ``redeliver``)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/api/queues/%2F/{name}",
            headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            found: dict[str, Any] = json.loads(response.read())
            return found


@contextlib.contextmanager
def own_broker() -> Iterator[Broker]:
    """Start a node of this run, yield it, then stop it and delete its data."""
    amqp, dist, http = ports.free_ports(3)
    home = Path(tempfile.mkdtemp(prefix="itl-rabbitmq-node-"))
    broker = Broker(home, amqp, http)
    extra_conf = home / "management.conf"
    extra_conf.write_text(f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {http}\n")
    broker.env = {
        **os.environ,
        "ITL_RABBITMQ_HOME": str(home),
        "RABBITMQ_NODENAME": f"itlbench{os.getpid()}@localhost",
        "RABBITMQ_NODE_PORT": str(amqp),
        "RABBITMQ_DIST_PORT": str(dist),
        "ITL_RABBITMQ_PLUGINS": "rabbitmq_management",
        "ITL_RABBITMQ_EXTRA_CONF": str(extra_conf),
    }
    try:
        broker.ctl("up")
        wait_until(_http_ok(http), timeout=120, what="RabbitMQ management API")
        yield broker
    finally:
        broker.ctl("down")
        shutil.rmtree(home, ignore_errors=True)


def _http_ok(port: int) -> Callable[[], bool]:
    def probe() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            return bool(response.status == 200)

    return probe
