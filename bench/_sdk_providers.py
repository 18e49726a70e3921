"""Provider factory for the SDK worker of the throughput benchmark.

The benchmark's job is a no-op for every system, and each returns the same answer: the
peers' no-op returns the resource name and a status, so ``NoOpJob`` answers those two inside
the SDK's response model (whose other fields, and the ``resource_guid`` every response gets,
are the SDK's own cost and stay). The SDK's demo provider (``SimulatedWorkProvider``) would
also look up the host name, count attempts and echo the request body into a larger result:
work the other systems' jobs do not do.

It registers under a namespace of its own, ``ITL.Bench``: the benchmark worker binds
``provider.ITL.Bench.#`` to ``bench.sdk.jobs``; had it bound ``provider.ITL.Demo.#``, it would
capture the ``ITL.Demo`` jobs of any test suite running on the same broker at the same time
(a matching binding bypasses the catch-all queue).
"""

from __future__ import annotations

from itl_controlplane_sdk.models import ResourceListResponse, ResourceRequest, ResourceResponse
from itl_controlplane_sdk.providers.base import ResourceProvider
from itl_controlplane_sdk.providers.registry import ResourceProviderRegistry

NAMESPACE = "ITL.Bench"
RESOURCE_TYPE = "Job"


class NoOpJob(ResourceProvider):
    """Does nothing and answers the resource's name and ``completed``, like the peers' job."""

    def __init__(self) -> None:
        super().__init__(NAMESPACE)

    async def create_or_update_resource(self, request: ResourceRequest) -> ResourceResponse:
        return ResourceResponse(name=request.resource_name, status="completed")

    async def get_resource(self, request: ResourceRequest) -> ResourceResponse:
        return await self.create_or_update_resource(request)

    async def list_resources(self, request: ResourceRequest) -> ResourceListResponse:
        return ResourceListResponse(value=[await self.create_or_update_resource(request)])

    async def delete_resource(self, request: ResourceRequest) -> ResourceResponse:
        return await self.create_or_update_resource(request)


def register(registry: ResourceProviderRegistry) -> None:
    """``WORKER_PROVIDERS=_sdk_providers:register`` (with ``bench/`` on PYTHONPATH)."""
    registry.register_provider(NAMESPACE, RESOURCE_TYPE, NoOpJob())
