"""TEST/DEV HELPER: a local worker process for every Running pod of a WorkerPool.

No container can run on kwok's fake node, so this helper plays kubelet for one pool. For
each pod that is Running and Ready it starts ``python -m itl_controlplane_sdk.workers``
with the environment the pod template declares: WORKER_ID is the pod name,
RABBITMQ_URL is the broker URL (the Secret's value), and WORKER_POOL, JOB_QUEUE,
JOB_BINDINGS, MAX_CONCURRENT_JOBS and JOB_TIMEOUT come from the Deployment. When a pod is
deleted, or starts terminating, it sends SIGTERM to that pod's worker, as kubelet would,
and SIGKILL once the pod's ``terminationGracePeriodSeconds`` has passed.

It also records what the autoscaler promises not to do: for every worker it stops, the
in-flight count the worker reported (``/status``) right before the stop. A scale-down
that removed only idle pods leaves ``busy_at_stop`` empty.

Not product code: it lives under ``tests/`` and is used by the autoscaler's integration
tests and benchmarks only.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

from itl_harness.workers import WorkerProcess
from localcluster import Cluster
from localcluster.workloads import running_and_ready

POOL_LABEL = "controlplane.itlusions.com/workerpool"
DEFAULT_GRACE_SECONDS = 30.0  # Kubernetes' default terminationGracePeriodSeconds
TEARDOWN_GRACE_SECONDS = 120.0
PASSED_THROUGH = (
    "WORKER_POOL",
    "JOB_QUEUE",
    "JOB_BINDINGS",
    "MAX_CONCURRENT_JOBS",
    "JOB_TIMEOUT",
    "DRAIN_TIMEOUT",
)


class PodWorkers:
    """Keeps one worker process per Running pod of ``pool`` (a background thread)."""

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        pool: str,
        *,
        rabbitmq_url: str,
        log_dir: Path,
        interval: float = 0.2,
    ) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.pool = pool
        self.rabbitmq_url = rabbitmq_url
        self.log_dir = log_dir
        self.interval = interval
        self.workers: dict[str, WorkerProcess] = {}
        self.grace: dict[str, float] = {}
        """Pod name -> its terminationGracePeriodSeconds (kubelet's SIGKILL deadline)."""
        self.stopped: dict[str, int] = {}
        """Pod name -> in-flight jobs its worker reported just before it was stopped."""
        self.started: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"pod-workers {pool}", daemon=True)
        self._stoppers: list[threading.Thread] = []
        self.errors: list[str] = []

    @property
    def busy_at_stop(self) -> dict[str, int]:
        """Stopped workers that still had jobs in flight (must stay empty)."""
        return {name: n for name, n in self.stopped.items() if n}

    def __enter__(self) -> PodWorkers:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for name in list(self.workers):
            self._retire(name, record=False)
        for thread in self._stoppers:
            thread.join(60)

    def running(self) -> list[str]:
        return sorted(self.workers)

    def draining(self) -> int:
        """Workers sent SIGTERM that are still running (finishing their jobs): a terminating
        pod that still holds its node's resources."""
        return sum(1 for thread in self._stoppers if thread.is_alive())

    def in_flight(self) -> dict[str, int]:
        """Current in-flight jobs per running worker, from its /status endpoint."""
        result = {}
        for name, worker in list(self.workers.items()):
            with contextlib.suppress(Exception):
                result[name] = int(worker.status().get("in_flight", 0))
        return result

    # -- the loop ----------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        path = f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{self.pool}"
        deployment: dict[str, Any] = self.cluster.api.get(path)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
        chosen = {k: v for k, v in env.items() if k in PASSED_THROUGH}
        chosen["LOG_LEVEL"] = "INFO"  # HEALTH_CHECK_PORT: WorkerProcess picks a free one
        return chosen

    def _pods(self) -> dict[str, dict[str, Any]]:
        items = self.cluster.api.get(
            f"/api/v1/namespaces/{self.namespace}/pods",
            labelSelector=f"{POOL_LABEL}={self.pool}",
        )["items"]
        return {p["metadata"]["name"]: p for p in items}

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception as exc:  # keep mirroring; the test asserts on errors
                self.errors.append(repr(exc))
            self._stop.wait(self.interval)

    def _sync(self) -> None:
        pods = self._pods()
        for name in list(self.workers):
            pod = pods.get(name)
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                self._retire(name, record=True)
        wanted = [
            name
            for name, pod in pods.items()
            if name not in self.workers
            and name not in self.stopped
            and not pod["metadata"].get("deletionTimestamp")
            and running_and_ready(pod)
        ]
        if not wanted:
            return
        env = self._env()
        for name in wanted:
            worker = WorkerProcess(name, self.rabbitmq_url, self.log_dir, env=env)
            worker.start(wait_healthy=0)
            self.workers[name] = worker
            self.grace[name] = float(
                pods[name]["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
            )
            self.started.append(name)

    def _retire(self, name: str, *, record: bool) -> None:
        worker = self.workers.pop(name)
        in_flight = 0
        with contextlib.suppress(Exception):
            in_flight = int(worker.status().get("in_flight", 0))
        if record:
            self.stopped[name] = in_flight
        # SIGTERM and let the worker drain in the background, as kubelet would. At teardown
        # (not recorded) nobody waits for the jobs, so the drain is cut short.
        grace = self.grace.pop(name, DEFAULT_GRACE_SECONDS)
        if not record:
            grace = min(grace, TEARDOWN_GRACE_SECONDS)
        thread = threading.Thread(target=worker.stop, kwargs={"timeout": grace}, daemon=True)
        thread.start()
        self._stoppers.append(thread)


def wait_for(probe: Any, *, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Tight deadline polling (the harness's ``wait_until`` backs off up to 2 s)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            last = probe()
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
