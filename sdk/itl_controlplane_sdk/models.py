"""Resource request and response models shared by the API, the providers and the workers.

Field names follow the upstream SDK so payloads stay wire-compatible. Two fixes matter for
the job system: ``ProvisioningState`` is a ``str`` enum, so dumped models are JSON-ready, and
``ResourceResponse`` carries the optional ``job_id``/``status`` fields an offloaded operation
needs to answer "accepted, here is your job".
"""

from __future__ import annotations

import uuid
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ProvisioningState(str, Enum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"
    CREATING = "Creating"
    UPDATING = "Updating"
    DELETING = "Deleting"
    ACCEPTED = "Accepted"


class ResourceRequest(BaseModel):
    """One operation on one resource, as the API received it."""

    model_config = ConfigDict(extra="forbid")

    subscription_id: str = Field(min_length=1, max_length=128)
    resource_group: str = Field(min_length=1, max_length=90)
    provider_namespace: str = Field(default="ITL.Core", min_length=1, max_length=128)
    resource_type: str = Field(min_length=1, max_length=128)
    resource_name: str = Field(min_length=1, max_length=260)
    location: str = Field(default="", max_length=64)
    body: dict[str, Any] = Field(default_factory=dict)
    action: str | None = Field(default=None, max_length=128)
    api_version: str = Field(default="2023-01-01", pattern=r"^\d{4}-\d{2}-\d{2}(-preview)?$")

    @property
    def resource_id(self) -> str:
        return resource_id(
            self.subscription_id,
            self.resource_group,
            self.provider_namespace,
            self.resource_type,
            self.resource_name,
        )


class ResourceResponse(BaseModel):
    """A resource as a provider returns it, or a pending answer for an offloaded operation."""

    id: str | None = None
    name: str | None = None
    type: str | None = None
    location: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] | None = None
    provisioning_state: ProvisioningState = ProvisioningState.SUCCEEDED
    resource_guid: str | None = Field(default_factory=lambda: str(uuid.uuid4()))
    job_id: str | None = None
    status: str | None = None


class ResourceListResponse(BaseModel):
    value: list[ResourceResponse] = Field(default_factory=list)
    next_link: str | None = None
    job_id: str | None = None
    status: str | None = None


def resource_id(
    subscription_id: str,
    resource_group: str,
    provider_namespace: str,
    resource_type: str,
    resource_name: str,
) -> str:
    """The ARM-style id of a resource."""
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
        f"/providers/{provider_namespace}/{resource_type}/{resource_name}"
    )
