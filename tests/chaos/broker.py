"""The chaos suite's own RabbitMQ node: the one it stops, restarts and kills with SIGKILL.

``tools/rabbitmq/rabbitmq.sh`` starts it under another nodename, free ports and a data
directory of its own, so the shared broker on 5672 is never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

from itl_harness.workers import free_port
from tests.support.services import RABBITMQ_SCRIPT


class ChaosBroker:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.stream_port = free_port()
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": f"itl-chaos-{uuid.uuid4().hex[:8]}@localhost",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "ITL_RABBITMQ_HOME": str(home),
            "ITL_RABBITMQ_STREAM_PORT": str(self.stream_port),
        }

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
