"""Example providers under a per-test namespace (``ITL_TEST_NAMESPACE``).

The broker is shared with other tests and benchmarks; binding a test's queue to
``provider.<unique namespace>.#`` means it receives only its own jobs.
"""

from __future__ import annotations

import os

from itl_controlplane_sdk.models import ResourceListResponse, ResourceRequest, ResourceResponse
from itl_controlplane_sdk.providers.base import ResourceProvider
from itl_controlplane_sdk.providers.examples import (
    InMemoryResourceGroupProvider,
    SimulatedWorkProvider,
)
from itl_controlplane_sdk.providers.registry import ResourceProviderRegistry
from itl_controlplane_sdk.workers import current_caller


class WhoAmIProvider(ResourceProvider):
    """Answers with the caller the job envelope named (``current_caller``)."""

    def __init__(self) -> None:
        super().__init__("ITL.Test")

    def _answer(self, request: ResourceRequest) -> ResourceResponse:
        caller = current_caller()
        return ResourceResponse(
            id=request.resource_id,
            name=request.resource_name,
            properties={"subject": caller.subject if caller else None},
        )

    async def create_or_update_resource(self, request: ResourceRequest) -> ResourceResponse:
        return self._answer(request)

    async def get_resource(self, request: ResourceRequest) -> ResourceResponse:
        return self._answer(request)

    async def list_resources(self, request: ResourceRequest) -> ResourceListResponse:
        return ResourceListResponse(value=[self._answer(request)])

    async def delete_resource(self, request: ResourceRequest) -> ResourceResponse:
        return self._answer(request)


def register(registry: ResourceProviderRegistry) -> None:
    namespace = os.environ["ITL_TEST_NAMESPACE"]
    registry.register_provider(namespace, "ResourceGroup", InMemoryResourceGroupProvider())
    registry.register_provider(namespace, "Job", SimulatedWorkProvider())
    registry.register_provider(namespace, "WhoAmI", WhoAmIProvider())
