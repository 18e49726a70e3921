"""ITL ControlPlane SDK: resource models, providers, and the Worker Role job system."""

from itl_controlplane_sdk.models import (
    ProvisioningState,
    ResourceListResponse,
    ResourceRequest,
    ResourceResponse,
)
from itl_controlplane_sdk.providers import ResourceProvider, ResourceProviderRegistry

__all__ = [
    "ProvisioningState",
    "ResourceListResponse",
    "ResourceProvider",
    "ResourceProviderRegistry",
    "ResourceRequest",
    "ResourceResponse",
]
