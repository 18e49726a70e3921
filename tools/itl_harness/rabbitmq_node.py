"""A RabbitMQ node of one run or test, next to the shared broker.

``tools/rabbitmq/rabbitmq.sh`` starts it under another node name, on free loopback ports (AMQP,
distribution, stream protocol) and with a data directory of its own, so the shared broker on
5672 is never touched. Tests that stop, kill or reconfigure a broker use one
(``tests/support/own_broker.py``), and so do benchmarks that must not load the shared broker
(hundreds of queues polled every few seconds) or that need the management plugin (KEDA's
MessageRate mode reads the HTTP API): ``own_broker()``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from localcluster import ports, wait_until

RABBITMQ_SCRIPT = Path(__file__).resolve().parents[1] / "rabbitmq" / "rabbitmq.sh"


class RabbitmqNode:
    """One node of ``rabbitmq.sh``: its ports, its data directory and the script's commands.

    ``base_env`` is the environment the script runs with (default: this process's);
    ``extra_conf`` a file of ``rabbitmq.conf`` lines appended to the node's configuration.
    """

    def __init__(
        self,
        home: Path,
        name: str,
        *,
        extra_conf: Path | None = None,
        plugins: str | None = None,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.home = home
        self.amqp_port, dist_port, self.stream_port = ports.free_ports(3)
        self.env = {
            **(os.environ if base_env is None else base_env),
            "RABBITMQ_NODENAME": f"{name}-{uuid.uuid4().hex[:8]}@localhost",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "ITL_RABBITMQ_HOME": str(home),
            "ITL_RABBITMQ_STREAM_PORT": str(self.stream_port),
        }
        if extra_conf is not None:
            self.env["ITL_RABBITMQ_EXTRA_CONF"] = str(extra_conf)
        if plugins is not None:
            self.env["ITL_RABBITMQ_PLUGINS"] = plugins

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    def ctl(self, *args: str, timeout: float = 300) -> str:
        """``rabbitmq.sh ARGS`` against this node (``up``, ``down``, ``ctl list_queues``...)."""
        done = subprocess.run(
            ["bash", str(RABBITMQ_SCRIPT), *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return done.stdout

    def eval(self, expression: str) -> str:
        """An Erlang expression evaluated in the running node (``rabbitmqctl eval``)."""
        return self.ctl("ctl", "-q", "eval", expression, timeout=60).strip()

    def up(self) -> None:
        self.ctl("up")

    def stop_app(self) -> None:
        """A clean broker stop: connections closed, the node stays."""
        self.ctl("ctl", "stop_app")

    def start_app(self) -> None:
        self.ctl("ctl", "start_app")
        self.ctl("ctl", "await_startup", "--timeout", "120")

    def kill(self) -> None:
        """SIGKILL to the broker's own process (its pid file), as a crash would."""
        pid = int((self.home / "rabbitmq.pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)
        (self.home / "rabbitmq.pid").unlink(missing_ok=True)

    def down(self) -> None:
        """Stops the node and deletes its data."""
        try:
            self.ctl("down", timeout=120)
        finally:
            shutil.rmtree(self.home, ignore_errors=True)


class Broker(RabbitmqNode):
    """A node with the management plugin on a loopback HTTP port of its own."""

    def __init__(self, home: Path, name: str) -> None:
        (self.http_port,) = ports.free_ports(1)
        management = home / "management.conf"
        management.write_text(
            f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {self.http_port}\n"
        )
        super().__init__(home, name, extra_conf=management, plugins="rabbitmq_management")

    @property
    def http_url(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.http_port}/"

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
    """Start a node of this run with the management API, yield it, then remove it."""
    broker = Broker(Path(tempfile.mkdtemp(prefix="itl-rabbitmq-node-")), "itlbench")
    try:
        broker.up()
        wait_until(_http_ok(broker.http_port), timeout=120, what="RabbitMQ management API")
        yield broker
    finally:
        broker.down()


def _http_ok(port: int) -> Callable[[], bool]:
    def probe() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            return bool(response.status == 200)

    return probe
