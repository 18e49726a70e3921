"""Real worker processes for tests: ``python -m itl_controlplane_sdk.workers`` as a subprocess.

Tests that need "a worker pod" run this instead of a container (no container runs on kwok
nodes), with WORKER_ID set to the pod name the operator created.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_gracefully(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM, as kubelet sends it; SIGKILL to the process group after ``timeout``."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


class WorkerProcess:
    """One SDK worker process with its own health port and log file."""

    def __init__(
        self,
        worker_id: str,
        rabbitmq_url: str,
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.port = free_port()
        self.log_path = log_dir / f"{worker_id}.log"
        self.env = {
            **os.environ,
            "WORKER_ID": worker_id,
            "RABBITMQ_URL": rabbitmq_url,
            "HEALTH_CHECK_HOST": "127.0.0.1",
            "HEALTH_CHECK_PORT": str(self.port),
            "LOG_LEVEL": "INFO",
            "HEARTBEAT_INTERVAL": "0.5",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, wait_healthy: float = 30.0) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "itl_controlplane_sdk.workers"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if wait_healthy:
            self.wait_healthy(wait_healthy)
        return self

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                body = r.read()
                status = r.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode()

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.worker_id} exited:\n{self.log()}")
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"worker {self.worker_id} not healthy in {timeout}s:\n{self.log()}")

    def status(self) -> dict[str, Any]:
        code, body = self.get("/status")
        assert code == 200, body
        assert isinstance(body, dict)
        return body

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        stop_gracefully(self.process, timeout)
