"""From ARM-shaped HTTP input to a ``ResourceRequest``, and from results back to JSON.

The path carries subscription, resource group, provider, type and name; the JSON body carries
``location``, ``properties``, ``tags`` and whatever else a provider reads (kept verbatim in
``ResourceRequest.body``). Validation errors name the field so a 400 says what to fix.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from itl_controlplane_sdk.api.errors import ApiError, describe_validation_errors
from itl_controlplane_sdk.models import ResourceRequest

API_VERSION_PATTERN = r"^\d{4}-\d{2}-\d{2}(-preview)?$"
LIST_PLACEHOLDER_NAME = "*"
"""``ResourceRequest`` needs a name; a list request has none, so it gets this placeholder."""

ApiVersion = Annotated[
    str,
    Query(
        alias="api-version",
        pattern=API_VERSION_PATTERN,
        description="API version of the resource type, e.g. 2023-01-01 (required).",
        examples=["2023-01-01"],
    ),
]

Wait = Annotated[
    bool | None,
    Query(
        description=(
            "Offloading mode: true waits up to JOB_TIMEOUT for the worker's answer, false "
            "answers 202 at once. Default: false for PUT/DELETE/POST, true for GET."
        ),
    ),
]


class ResourceBody(BaseModel):
    """An ARM resource body. Unknown top-level fields are passed to the provider as sent."""

    model_config = ConfigDict(extra="allow")

    location: str = Field(default="", max_length=64)
    properties: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] | None = None


class ActionBody(BaseModel):
    """Parameters of a POST action; any JSON object."""

    model_config = ConfigDict(extra="allow")


def resource_request(
    *,
    subscription_id: str,
    resource_group: str,
    provider_namespace: str,
    resource_type: str,
    resource_name: str,
    api_version: str,
    body: BaseModel | None = None,
    action: str | None = None,
) -> ResourceRequest:
    """The validated request, or a 400 naming the offending field."""
    data: dict[str, Any] = body.model_dump(mode="json", exclude_unset=True) if body else {}
    location = data.get("location", "")
    try:
        return ResourceRequest(
            subscription_id=subscription_id,
            resource_group=resource_group,
            provider_namespace=provider_namespace,
            resource_type=resource_type,
            resource_name=resource_name,
            location=location if isinstance(location, str) else "",
            body=data,
            action=action,
            api_version=api_version,
        )
    except ValidationError as exc:
        message, target = describe_validation_errors(exc.errors())
        raise ApiError(400, "InvalidRequestContent", message, target=target) from None


def drop_none(data: dict[str, Any]) -> dict[str, Any]:
    """Top-level None fields (job_id, status, tags...) are noise in a finished answer."""
    return {key: value for key, value in data.items() if value is not None}
