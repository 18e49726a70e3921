"""WorkerRole: lifecycle, counters and the job-processing template shared by all workers."""

from __future__ import annotations

import abc
import logging
import time
from datetime import UTC, datetime
from typing import Any

from itl_controlplane_sdk.models import ResourceRequest
from itl_controlplane_sdk.workers.results import JobStatus

log = logging.getLogger(__name__)


class WorkerRole(abc.ABC):
    """Base class for implementing worker processes."""

    def __init__(self, worker_id: str, worker_type: str = "generic") -> None:
        self.worker_id = worker_id
        self.worker_type = worker_type
        self.is_running = False
        self.jobs_processed = 0
        self.jobs_failed = 0
        self.started_at: datetime | None = None
        self._started_monotonic: float | None = None

    async def start(self) -> None:
        """Starts the worker; raises if initialisation fails (the worker stays stopped)."""
        if self.is_running:
            return
        await self._start_impl()
        self.started_at = datetime.now(UTC)
        self._started_monotonic = time.monotonic()
        self.is_running = True
        log.info("worker %s (%s) started", self.worker_id, self.worker_type)

    async def stop(self) -> None:
        """Stops the worker and releases its resources; safe to call twice."""
        if not self.is_running:
            return
        self.is_running = False
        await self._stop_impl()
        log.info("worker %s stopped", self.worker_id)

    async def process_job(
        self,
        job_id: str,
        provider_namespace: str,
        resource_type: str,
        operation: str,
        request: ResourceRequest,
    ) -> dict[str, Any]:
        """Runs one job; failures come back as ``status: failed`` with ``error``, never raised."""
        try:
            result = await self._process_job_impl(
                job_id, provider_namespace, resource_type, operation, request
            )
        except Exception as exc:
            self.jobs_failed += 1
            log.warning("job %s failed: %s", job_id, exc)
            return {
                "job_id": job_id,
                "status": JobStatus.FAILED.value,
                "error": f"{type(exc).__name__}: {exc}",
                "timestamp": datetime.now(UTC).isoformat(),
            }
        self.jobs_processed += 1
        return {
            "job_id": job_id,
            "status": JobStatus.COMPLETED.value,
            "result": result,
            "timestamp": datetime.now(UTC).isoformat(),
        }

    @property
    def uptime_seconds(self) -> float:
        if self._started_monotonic is None:
            return 0.0
        return time.monotonic() - self._started_monotonic

    def get_status(self) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "worker_type": self.worker_type,
            "is_running": self.is_running,
            "jobs_processed": self.jobs_processed,
            "jobs_failed": self.jobs_failed,
            "uptime_seconds": round(self.uptime_seconds, 3),
            "started_at": self.started_at.isoformat() if self.started_at else None,
        }

    @abc.abstractmethod
    async def _start_impl(self) -> None: ...

    @abc.abstractmethod
    async def _stop_impl(self) -> None: ...

    @abc.abstractmethod
    async def _process_job_impl(
        self,
        job_id: str,
        provider_namespace: str,
        resource_type: str,
        operation: str,
        request: ResourceRequest,
    ) -> dict[str, Any]: ...
