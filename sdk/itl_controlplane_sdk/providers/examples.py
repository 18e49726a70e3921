"""Providers that ship with the SDK for demos, benchmarks and tests of the job system.

``ITL.Core/ResourceGroup`` keeps resource groups in memory (per worker process).
``ITL.Demo/Job`` simulates work from its request body, so a demo or a test can ask a real
worker for a slow job, a failing job or a no-op:

- ``{"seconds": 2.5}`` sleeps that long before answering;
- ``{"fail": "retryable"}`` raises a retryable error, ``{"fail": "permanent"}`` a permanent one;
- ``{"fail_attempts": 2}`` fails retryably on the first two attempts of a resource name, then
  succeeds (the count is per process);
- ``{"allocate_mib": 300}`` holds that much memory (every page written) while it works, to
  show what a memory limit does to a worker; with ``{"allocate_on_host": "pod-a"}`` only on
  the host (the pod) of that name, so a test can tell the worker it kills from the one that
  finishes the job.

Every answer names the host that ran it (``properties.host``).
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter

from itl_controlplane_sdk.errors import (
    PermanentJobError,
    ResourceNotFoundError,
    RetryableJobError,
)
from itl_controlplane_sdk.models import (
    ProvisioningState,
    ResourceListResponse,
    ResourceRequest,
    ResourceResponse,
)
from itl_controlplane_sdk.providers.base import ResourceProvider
from itl_controlplane_sdk.providers.registry import ResourceProviderRegistry


def _response(request: ResourceRequest, properties: dict[str, object]) -> ResourceResponse:
    return ResourceResponse(
        id=request.resource_id,
        name=request.resource_name,
        type=f"{request.provider_namespace}/{request.resource_type}",
        location=request.location,
        properties=dict(properties),
    )


class InMemoryResourceGroupProvider(ResourceProvider):
    """Resource groups kept in a dict: enough to show create/get/list/delete round trips."""

    def __init__(self) -> None:
        super().__init__("ITL.Core")
        self._groups: dict[str, ResourceResponse] = {}

    async def create_or_update_resource(self, request: ResourceRequest) -> ResourceResponse:
        response = _response(request, request.body.get("properties", {}))
        self._groups[request.resource_id] = response
        return response

    async def get_resource(self, request: ResourceRequest) -> ResourceResponse:
        try:
            return self._groups[request.resource_id]
        except KeyError:
            raise ResourceNotFoundError(f"resource {request.resource_id} not found") from None

    async def list_resources(self, request: ResourceRequest) -> ResourceListResponse:
        prefix = request.resource_id.rsplit("/", 1)[0] + "/"
        return ResourceListResponse(
            value=[r for rid, r in self._groups.items() if rid.startswith(prefix)]
        )

    async def delete_resource(self, request: ResourceRequest) -> ResourceResponse:
        removed = self._groups.pop(request.resource_id, None)
        response = removed or _response(request, {})
        return response.model_copy(update={"provisioning_state": ProvisioningState.DELETING})

    async def execute_action(self, request: ResourceRequest) -> ResourceResponse:
        return _response(request, {"action": request.action, "accepted": True})


MIB = 1024 * 1024


def _allocation(body: dict[str, object]) -> bytes:
    """The memory a job asked to hold on this host, every page written (so it is resident)."""
    target = body.get("allocate_on_host")
    if target is not None and target != socket.gethostname():
        return b""
    return b"\x01" * (int(str(body.get("allocate_mib", 0))) * MIB)


class SimulatedWorkProvider(ResourceProvider):
    """Work whose duration and outcome the request body chooses (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__("ITL.Demo")
        self._attempts: Counter[str] = Counter()

    async def _work(self, request: ResourceRequest) -> ResourceResponse:
        body = request.body
        held = _allocation(body)
        seconds = float(body.get("seconds", 0))
        if seconds > 0:
            await asyncio.sleep(seconds)
        del held
        self._attempts[request.resource_name] += 1
        fail = body.get("fail")
        if fail == "retryable":
            raise RetryableJobError("simulated transient failure")
        if fail == "permanent":
            raise PermanentJobError("simulated permanent failure")
        if self._attempts[request.resource_name] <= int(body.get("fail_attempts", 0)):
            raise RetryableJobError(
                f"simulated transient failure {self._attempts[request.resource_name]}"
            )
        return _response(
            request,
            {
                "echo": body,
                "attempts": self._attempts[request.resource_name],
                "host": socket.gethostname(),
            },
        )

    async def create_or_update_resource(self, request: ResourceRequest) -> ResourceResponse:
        return await self._work(request)

    async def get_resource(self, request: ResourceRequest) -> ResourceResponse:
        return await self._work(request)

    async def list_resources(self, request: ResourceRequest) -> ResourceListResponse:
        return ResourceListResponse(value=[await self._work(request)])

    async def delete_resource(self, request: ResourceRequest) -> ResourceResponse:
        return await self._work(request)

    async def execute_action(self, request: ResourceRequest) -> ResourceResponse:
        return await self._work(request)


def register_example_providers(registry: ResourceProviderRegistry) -> None:
    """Entry point: registers ITL.Core/ResourceGroup and ITL.Demo/Job."""
    registry.register_provider("ITL.Core", "ResourceGroup", InMemoryResourceGroupProvider())
    registry.register_provider("ITL.Demo", "Job", SimulatedWorkProvider())
