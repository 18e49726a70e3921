"""Provider registries that hand operations to the worker fleet instead of running them."""

from __future__ import annotations

from typing import Any

from itl_controlplane_sdk.errors import JobFailedError
from itl_controlplane_sdk.models import (
    ProvisioningState,
    ResourceListResponse,
    ResourceRequest,
    ResourceResponse,
)
from itl_controlplane_sdk.providers.registry import ResourceProviderRegistry
from itl_controlplane_sdk.workers.queue import JobQueue
from itl_controlplane_sdk.workers.results import JobStatus

OPERATION_PRIORITY = {"get": 8, "create": 7, "delete": 6, "list": 5, "action": 5}


class OffloadingProviderRegistry(ResourceProviderRegistry):
    """Submits each operation as a job and answers at once with a pending response."""

    def __init__(self, job_queue: JobQueue) -> None:
        super().__init__()
        self.job_queue = job_queue

    async def _submit(
        self, provider_namespace: str, resource_type: str, operation: str, request: ResourceRequest
    ) -> str:
        return await self.job_queue.submit_job(
            provider_namespace,
            resource_type,
            operation,
            request,
            priority=OPERATION_PRIORITY[operation],
        )

    @staticmethod
    def _pending(
        request: ResourceRequest, provider_namespace: str, resource_type: str, job_id: str
    ) -> ResourceResponse:
        return ResourceResponse(
            id=request.resource_id,
            name=request.resource_name,
            type=f"{provider_namespace}/{resource_type}",
            location=request.location,
            provisioning_state=ProvisioningState.ACCEPTED,
            job_id=job_id,
            status=JobStatus.PENDING.value,
        )

    async def create_or_update_resource(
        self, provider_namespace: str, resource_type: str, request: ResourceRequest
    ) -> ResourceResponse:
        job_id = await self._submit(provider_namespace, resource_type, "create", request)
        return self._pending(request, provider_namespace, resource_type, job_id)

    async def get_resource(
        self, provider_namespace: str, resource_type: str, request: ResourceRequest
    ) -> ResourceResponse:
        job_id = await self._submit(provider_namespace, resource_type, "get", request)
        return self._pending(request, provider_namespace, resource_type, job_id)

    async def list_resources(
        self, provider_namespace: str, resource_type: str, request: ResourceRequest
    ) -> ResourceListResponse:
        job_id = await self._submit(provider_namespace, resource_type, "list", request)
        return ResourceListResponse(value=[], job_id=job_id, status=JobStatus.PENDING.value)

    async def delete_resource(
        self, provider_namespace: str, resource_type: str, request: ResourceRequest
    ) -> ResourceResponse:
        job_id = await self._submit(provider_namespace, resource_type, "delete", request)
        return self._pending(request, provider_namespace, resource_type, job_id)

    async def execute_action(
        self, provider_namespace: str, resource_type: str, request: ResourceRequest
    ) -> ResourceResponse:
        job_id = await self._submit(provider_namespace, resource_type, "action", request)
        return self._pending(request, provider_namespace, resource_type, job_id)

    async def get_job_result(self, job_id: str, timeout: float = 30.0) -> dict[str, Any] | None:
        """The job's result as a dict, waiting up to ``timeout`` seconds (0: do not wait)."""
        result = await self.job_queue.get_result(job_id, timeout=timeout)
        return result.to_dict() if result is not None else None

    async def get_queue_stats(self) -> dict[str, Any]:
        return await self.job_queue.get_queue_stats()


class SyncOffloadingProviderRegistry(OffloadingProviderRegistry):
    """Offloads, then waits for the worker's answer."""

    def __init__(self, job_queue: JobQueue, default_timeout: float = 30.0) -> None:
        super().__init__(job_queue)
        self.default_timeout = default_timeout

    async def create_or_update_resource_sync(
        self,
        provider_namespace: str,
        resource_type: str,
        request: ResourceRequest,
        timeout: float | None = None,
    ) -> ResourceResponse:
        """Creates or updates through a worker and returns the finished resource.

        Raises ``TimeoutError`` when no result arrives in time (the job may still run) and
        ``JobFailedError`` when the job failed.
        """
        wait = self.default_timeout if timeout is None else timeout
        pending = await self.create_or_update_resource(provider_namespace, resource_type, request)
        assert pending.job_id is not None
        result = await self.job_queue.get_result(pending.job_id, timeout=wait)
        if result is None:
            raise TimeoutError(f"job {pending.job_id} did not finish within {wait:g}s")
        if result.status is not JobStatus.COMPLETED:
            raise JobFailedError(pending.job_id, result.status, result.error)
        completed = ResourceResponse.model_validate(result.result or {})
        return completed.model_copy(
            update={"job_id": pending.job_id, "status": result.status.value}
        )
