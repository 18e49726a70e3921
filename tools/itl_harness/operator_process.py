"""Run ``python -m workerpool_operator`` as a real process against a test cluster.

A subprocess, not an in-process runner, so restarts, RSS and the CLI entry point are what
users get. Used by the integration tests and the operator benchmarks.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path

from itl_harness.stack import LOCAL_BROKER_URL, put_secret
from localcluster import ApiError, Cluster, WaitTimeout, wait_until
from localcluster.waiting import StopWaiting

REPO = Path(__file__).resolve().parents[2]
"""The repository (the harness is installed from it in editable mode)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """One operator process; ``start``/``stop``/``restart`` keep the same ports and log."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        *,
        namespaces: str,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.namespaces = namespaces
        self.extra_env = dict(env or {})
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "KUBECONFIG": str(self.kubeconfig),
                "WORKERPOOL_OPERATOR_NAMESPACES": self.namespaces,
                "WORKERPOOL_OPERATOR_BIND_ADDRESS": "127.0.0.1",
                "WORKERPOOL_OPERATOR_HEALTH_PORT": str(self.health_port),
                "WORKERPOOL_OPERATOR_METRICS_PORT": str(self.metrics_port),
                "WORKERPOOL_OPERATOR_DEFAULT_WORKER_IMAGE": "itl-controlplane-worker:test",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n===== operator start #{self.starts} =====\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workerpool_operator"],
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        log.close()
        wait_until(self._alive, timeout=timeout, what="the operator's liveness endpoint")

    def wait_until_watching(self, cluster: Cluster, prefix: str, attempts: int = 6) -> None:
        """Returns once the operator reconciles a pool in a namespace created after it started.

        Kopf resolves namespace patterns by listing namespaces, then watching them; a namespace
        created between the two is only noticed when it next changes (docs/operations.md,
        "Known limitations"). A canary namespace per attempt finds when the watch is live.
        """
        for _ in range(attempts):
            namespace = cluster.create_namespace(f"{prefix}canary-{uuid.uuid4().hex[:6]}")
            try:
                put_secret(cluster, namespace, LOCAL_BROKER_URL)
                cluster.kubectl("-n", namespace, "apply", "-f", "-", input=CANARY_POOL)
                deployment = f"/apis/apps/v1/namespaces/{namespace}/deployments/canary"
                with contextlib.suppress(WaitTimeout):
                    wait_until(
                        functools.partial(cluster.api.get_or_none, deployment),
                        timeout=10,
                        what="canary",
                    )
                    return
            finally:
                with contextlib.suppress(ApiError):
                    cluster.api.delete(f"/api/v1/namespaces/{namespace}")
        raise AssertionError(f"the operator never reconciled a canary pool:\n{self.log_tail()}")

    def _alive(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise StopWaiting(f"operator exited; log tail:\n{self.log_tail()}")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2):
            return True

    def stop(self, timeout: float = 30) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return bytes(response.read()).decode()

    def rss_kib(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def log_tail(self, lines: int = 60) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait_for_log(self, text: str, *, timeout: float, since: int = 0) -> None:
        """Wait until ``text`` appears in the log after byte offset ``since``."""

        def seen() -> bool:
            return text in self.log_path.read_text(errors="replace")[since:]

        wait_until(seen, timeout=timeout, what=f"operator log line {text!r}")

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0


def sample_metric(text: str, name: str, labels: str = "") -> float:
    """Value of one Prometheus sample (``name{labels}``) in an exposition text; 0 if absent."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def now() -> float:
    return time.monotonic()


CANARY_POOL = """
apiVersion: controlplane.itlusions.com/v1alpha1
kind: WorkerPool
metadata: {name: canary}
spec: {replicaCount: 0, rabbitmq: {secretRef: {name: rabbitmq}}}
"""
