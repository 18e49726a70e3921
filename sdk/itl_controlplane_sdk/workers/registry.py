"""WorkerRegistry: several worker instances managed as one (e.g. in one process)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from itl_controlplane_sdk.workers.base import WorkerRole


class WorkerRegistry:
    def __init__(self) -> None:
        self._workers: dict[str, WorkerRole] = {}
        self.created_at = datetime.now(UTC)

    def register_worker(self, worker: WorkerRole) -> None:
        if worker.worker_id in self._workers:
            raise ValueError(f"Worker with ID {worker.worker_id} is already registered")
        self._workers[worker.worker_id] = worker

    def unregister_worker(self, worker_id: str) -> bool:
        return self._workers.pop(worker_id, None) is not None

    def get_worker(self, worker_id: str) -> WorkerRole | None:
        return self._workers.get(worker_id)

    def get_workers_by_type(self, worker_type: str) -> list[WorkerRole]:
        return [w for w in self._workers.values() if w.worker_type == worker_type]

    def get_active_workers(self) -> list[WorkerRole]:
        return [w for w in self._workers.values() if w.is_running]

    def list_workers(self) -> list[str]:
        return list(self._workers)

    def get_worker_status(self, worker_id: str) -> dict[str, Any] | None:
        worker = self._workers.get(worker_id)
        return worker.get_status() if worker is not None else None

    def get_all_worker_statuses(self) -> dict[str, dict[str, Any]]:
        return {worker_id: w.get_status() for worker_id, w in self._workers.items()}

    def get_registry_status(self) -> dict[str, Any]:
        statuses = self.get_all_worker_statuses()
        return {
            "created_at": self.created_at.isoformat(),
            "total_workers": len(statuses),
            "active_workers": sum(1 for s in statuses.values() if s["is_running"]),
            "total_jobs_processed": sum(s["jobs_processed"] for s in statuses.values()),
            "total_jobs_failed": sum(s["jobs_failed"] for s in statuses.values()),
            "workers": statuses,
        }

    async def start_all_workers(self) -> None:
        await asyncio.gather(*(w.start() for w in self._workers.values()))

    async def stop_all_workers(self) -> None:
        await asyncio.gather(*(w.stop() for w in self._workers.values()))

    async def stop_worker(self, worker_id: str) -> bool:
        worker = self._workers.get(worker_id)
        if worker is None:
            return False
        await worker.stop()
        return True
