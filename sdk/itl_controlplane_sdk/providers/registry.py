"""Look-up of providers by namespace and resource type, and in-process dispatch to them."""

from __future__ import annotations

from itl_controlplane_sdk.models import ResourceListResponse, ResourceRequest, ResourceResponse
from itl_controlplane_sdk.providers.base import ResourceProvider


class ResourceProviderRegistry:
    """Providers keyed by ``(namespace, resource_type)``; runs operations in this process."""

    def __init__(self) -> None:
        self._providers: dict[tuple[str, str], ResourceProvider] = {}

    def register_provider(
        self, provider_namespace: str, resource_type: str, provider: ResourceProvider
    ) -> None:
        self._providers[(provider_namespace, resource_type)] = provider
        if resource_type not in provider.supported_resource_types:
            provider.supported_resource_types.append(resource_type)

    def get_provider(self, provider_namespace: str, resource_type: str) -> ResourceProvider:
        try:
            return self._providers[(provider_namespace, resource_type)]
        except KeyError:
            raise ValueError(
                f"No provider found for {provider_namespace}/{resource_type}"
            ) from None

    def has_provider(self, provider_namespace: str, resource_type: str) -> bool:
        return (provider_namespace, resource_type) in self._providers

    def list_providers(self) -> list[str]:
        return sorted(f"{ns}/{rt}" for ns, rt in self._providers)

    async def create_or_update_resource(
        self, provider_namespace: str, resource_type: str, request: ResourceRequest
    ) -> ResourceResponse:
        provider = self.get_provider(provider_namespace, resource_type)
        return await provider.create_or_update_resource(request)

    async def get_resource(
        self, provider_namespace: str, resource_type: str, request: ResourceRequest
    ) -> ResourceResponse:
        return await self.get_provider(provider_namespace, resource_type).get_resource(request)

    async def list_resources(
        self, provider_namespace: str, resource_type: str, request: ResourceRequest
    ) -> ResourceListResponse:
        return await self.get_provider(provider_namespace, resource_type).list_resources(request)

    async def delete_resource(
        self, provider_namespace: str, resource_type: str, request: ResourceRequest
    ) -> ResourceResponse:
        return await self.get_provider(provider_namespace, resource_type).delete_resource(request)

    async def execute_action(
        self, provider_namespace: str, resource_type: str, request: ResourceRequest
    ) -> ResourceResponse:
        return await self.get_provider(provider_namespace, resource_type).execute_action(request)
