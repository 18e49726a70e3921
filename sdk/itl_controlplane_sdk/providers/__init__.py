"""Resource providers: the interface, the registry, and loading them into a worker."""

from itl_controlplane_sdk.providers.base import ResourceProvider
from itl_controlplane_sdk.providers.registry import ResourceProviderRegistry

__all__ = ["ResourceProvider", "ResourceProviderRegistry"]
