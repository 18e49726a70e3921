"""A real API server process for tests: ``python -m itl_controlplane_sdk.api`` on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from itl_harness.workers import free_port, stop_gracefully


class ApiProcess:
    """One API server with its own port, environment and log file."""

    def __init__(self, name: str, log_dir: Path, *, env: Mapping[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        self.env = {
            **os.environ,
            "API_HOST": "127.0.0.1",
            "API_PORT": str(self.port),
            "LOG_LEVEL": "INFO",
            "AUTH_MODE": "none",  # the authentication tests set AUTH_MODE=oidc
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, wait_for: str = "/livez", timeout: float = 30.0) -> ApiProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "itl_controlplane_sdk.api"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_status(wait_for, 200, timeout)
        return self

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def wait_status(self, path: str, status: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"API {self.name} exited:\n{self.log()}")
            try:
                last = httpx.get(self.url + path, timeout=2).status_code
                if last == status:
                    return
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.05)
        raise AssertionError(
            f"{self.name}{path} not {status} in {timeout}s ({last}):\n{self.log()}"
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 15.0) -> None:
        stop_gracefully(self.process, timeout)
