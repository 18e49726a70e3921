"""The interface every resource provider implements."""

from __future__ import annotations

import abc

from itl_controlplane_sdk.errors import UnsupportedActionError
from itl_controlplane_sdk.models import ResourceListResponse, ResourceRequest, ResourceResponse


class ResourceProvider(abc.ABC):
    """Carries out operations on the resource types of one namespace.

    Methods are async because providers talk to other systems. They may be called more than
    once for the same request: the job system delivers at least once, so make create, update
    and delete idempotent (see docs/queue-topology.md, "Delivery guarantee").
    """

    def __init__(self, provider_namespace: str) -> None:
        self.provider_namespace = provider_namespace
        self.supported_resource_types: list[str] = []

    @abc.abstractmethod
    async def create_or_update_resource(self, request: ResourceRequest) -> ResourceResponse: ...

    @abc.abstractmethod
    async def get_resource(self, request: ResourceRequest) -> ResourceResponse: ...

    @abc.abstractmethod
    async def list_resources(self, request: ResourceRequest) -> ResourceListResponse: ...

    @abc.abstractmethod
    async def delete_resource(self, request: ResourceRequest) -> ResourceResponse: ...

    async def execute_action(self, request: ResourceRequest) -> ResourceResponse:
        """Runs ``request.action``; providers with actions override this.

        The default lets a provider without actions be instantiated (as upstream providers
        expect) and refuses every action with an error the API answers as 400.
        """
        raise UnsupportedActionError(
            f"{self.provider_namespace} supports no action {request.action!r}"
            f" on {request.resource_type}"
        )

    def supports_resource_type(self, resource_type: str) -> bool:
        return resource_type in self.supported_resource_types
