"""Prometheus metrics of one worker process.

The four metrics of the API reference (``worker_jobs_processed``, ``worker_jobs_failed``,
``worker_uptime_seconds``, ``worker_running``) keep their exact names: prometheus-client would
append ``_total`` to the counters, which would break dashboards written against the
reference, so a small collector renders them from the worker's own counters. The rest are
ordinary prometheus-client metrics on a private registry (one per worker, so tests and
several workers in one process do not collide).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from itl_controlplane_sdk.workers.base import WorkerRole

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

JOB_DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
)


def _label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class WorkerMetrics:
    """The worker's metric families; every series carries ``worker_id`` and ``pool``.

    ``pool`` is the worker's WORKER_POOL (``namespace/name`` under the operator), so a
    dashboard can sum a pool's workers without relying on how Prometheus found the pods.
    """

    def __init__(self, worker_id: str, pool: str = "default") -> None:
        self.worker_id = worker_id
        self.pool = pool
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["worker_id", "pool"]
        self.job_duration = Histogram(
            "worker_job_duration_seconds",
            "Time from job start to outcome",
            ["worker_id", "pool", "operation", "status"],
            buckets=JOB_DURATION_BUCKETS,
            registry=self.registry,
        )
        self._job_series: dict[tuple[str, str], Histogram] = {}
        self.in_flight = Gauge(
            "worker_jobs_in_flight", "Jobs running now", labels, registry=self.registry
        ).labels(worker_id, pool)
        self.capacity = Gauge(
            "worker_job_capacity",
            "Jobs this worker may run at once (maxConcurrentJobs)",
            labels,
            registry=self.registry,
        ).labels(worker_id, pool)
        self.retries = Counter(
            "worker_job_retries",
            "Job attempts that failed retryably and were rescheduled",
            labels,
            registry=self.registry,
        ).labels(worker_id, pool)
        self.draining = Gauge(
            "worker_draining",
            "1 while the worker drains before exit",
            labels,
            registry=self.registry,
        ).labels(worker_id, pool)

    def observe_job(self, operation: str, status: str, seconds: float) -> None:
        # ``labels`` takes a lock and builds its key on every call: a few µs of every job.
        # The series of the few operation and outcome pairs are looked up once instead.
        series = self._job_series.get((operation, status))
        if series is None:
            series = self.job_duration.labels(self.worker_id, self.pool, operation, status)
            self._job_series[(operation, status)] = series
        series.observe(seconds)

    def render(self, worker: WorkerRole) -> bytes:
        status = worker.get_status()
        wid = _label(worker.worker_id)
        reference = (
            ("worker_jobs_processed", "Total jobs processed", "counter", status["jobs_processed"]),
            ("worker_jobs_failed", "Total jobs failed", "counter", status["jobs_failed"]),
            (
                "worker_uptime_seconds",
                "Worker uptime in seconds",
                "gauge",
                status["uptime_seconds"],
            ),
            ("worker_running", "Worker is running", "gauge", 1 if status["is_running"] else 0),
        )
        lines = []
        for name, help_text, kind, value in reference:
            lines += [
                f"# HELP {name} {help_text}",
                f"# TYPE {name} {kind}",
                f'{name}{{worker_id="{wid}"}} {value}',
            ]
        return ("\n".join(lines) + "\n").encode() + generate_latest(self.registry)
