"""A RabbitMQ node of a test's own: the one a test may stop, kill or start with other settings.

``tools/rabbitmq/rabbitmq.sh`` starts it under another nodename, on free loopback ports (AMQP,
distribution, stream protocol) and with a data directory of its own, so the shared broker on
5672 is never touched. The node runs at the script's defaults: settings of the caller's
environment that would change its runtime are left out, so what a test observes is what the
script gives every broker of development, CI and the benchmarks.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from itl_harness.workers import free_port
from tests.support.services import RABBITMQ_SCRIPT, unavailable

RUNTIME_OVERRIDES = (
    "RABBITMQ_SCHEDULER_BIND_TYPE",
    "RABBITMQ_SCHEDULER_BUSY_WAIT_THRESHOLD",
    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
    "RABBITMQ_SERVER_ERL_ARGS",
)
"""What would override the script's Erlang runtime defaults."""


class OwnBroker:
    def __init__(self, home: Path, name: str, *, extra_conf: Path | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.stream_port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in RUNTIME_OVERRIDES},
            "RABBITMQ_NODENAME": f"{name}-{uuid.uuid4().hex[:8]}@localhost",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "ITL_RABBITMQ_HOME": str(home),
            "ITL_RABBITMQ_STREAM_PORT": str(self.stream_port),
        }
        if extra_conf is not None:
            self.env["ITL_RABBITMQ_EXTRA_CONF"] = str(extra_conf)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def script(self, *args: str, timeout: float = 300) -> str:
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
        return self.script("ctl", "-q", "eval", expression, timeout=60).strip()

    def up(self) -> None:
        self.script("up")

    def stop_app(self) -> None:
        """A clean broker stop: connections closed, the node stays."""
        self.script("ctl", "stop_app")

    def start_app(self) -> None:
        self.script("ctl", "start_app")
        self.script("ctl", "await_startup", "--timeout", "120")

    def kill(self) -> None:
        """SIGKILL to the broker's own process (its pid file), as a crash would."""
        pid = int((self.home / "rabbitmq.pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)
        (self.home / "rabbitmq.pid").unlink(missing_ok=True)

    def down(self) -> None:
        try:
            self.script("down", timeout=120)
        finally:
            shutil.rmtree(self.home, ignore_errors=True)


@contextmanager
def running(broker: OwnBroker) -> Iterator[OwnBroker]:
    """The node started for the block and removed after it; a machine without RabbitMQ, or a
    node that cannot start, is the missing service (a skip, a failure under CI=true)."""
    if shutil.which("rabbitmq-server", path="/usr/lib/rabbitmq/bin:/usr/sbin") is None:
        unavailable("RabbitMQ", "rabbitmq-server is not installed (make install)")
    try:
        broker.up()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        broker.down()
        unavailable("RabbitMQ node", f"{exc.stdout!r} {exc.stderr!r}")
    try:
        yield broker
    finally:
        broker.down()
