"""ITL ControlPlane SDK: resource models, providers, and the Worker Role job system."""

from importlib.metadata import version as _version

from itl_controlplane_sdk.errors import ResourceNotFoundError, UnsupportedActionError
from itl_controlplane_sdk.models import (
    ProvisioningState,
    ResourceListResponse,
    ResourceRequest,
    ResourceResponse,
)
from itl_controlplane_sdk.providers import ResourceProvider, ResourceProviderRegistry

__version__ = _version("itl-controlplane-workers")
"""The installed distribution's version (pyproject.toml is its one source)."""

__all__ = [
    "ProvisioningState",
    "ResourceListResponse",
    "ResourceNotFoundError",
    "ResourceProvider",
    "ResourceProviderRegistry",
    "ResourceRequest",
    "ResourceResponse",
    "UnsupportedActionError",
    "__version__",
]
