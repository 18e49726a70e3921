"""The ARM resource routes: resources under a provider, and resource groups.

Resource groups are resources of ``ITL.Core/ResourceGroup`` (``API_RESOURCE_GROUP_PROVIDER``)
named like the group, so the same providers (and the same worker fleet) serve them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request
from fastapi.responses import JSONResponse

from itl_controlplane_sdk.api import arm
from itl_controlplane_sdk.api.access import authorize_subscription
from itl_controlplane_sdk.api.arm import ActionBody, ApiVersion, ResourceBody, Wait
from itl_controlplane_sdk.api.context import ApiContext, get_context
from itl_controlplane_sdk.api.dispatch import dispatch
from itl_controlplane_sdk.api.errors import AUTH_RESPONSES, ERROR_RESPONSES
from itl_controlplane_sdk.workers.envelope import Operation

router = APIRouter(
    responses={**ERROR_RESPONSES, **AUTH_RESPONSES},
    dependencies=[Depends(authorize_subscription)],
)

RESOURCE = (
    "/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
    "/providers/{provider_namespace}/{resource_type}/{resource_name}"
)
COLLECTION = (
    "/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
    "/providers/{provider_namespace}/{resource_type}"
)
GROUP = "/subscriptions/{subscription_id}/resourceGroups/{resource_group}"

Subscription = Annotated[str, Path(description="Subscription id")]
Group = Annotated[str, Path(description="Resource group name")]
Namespace = Annotated[str, Path(description="Provider namespace, e.g. ITL.Core")]
ResourceType = Annotated[str, Path(description="Resource type, e.g. ResourceGroup")]
Name = Annotated[str, Path(description="Resource name")]
Context = Annotated[ApiContext, Depends(get_context)]

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The resource (in-process, or offloaded with wait)"},
    202: {
        "description": (
            "Offloaded: accepted as a job. Location and Azure-AsyncOperation point at "
            "/operations/{job_id}; Retry-After says when to poll."
        )
    },
}


async def _run(
    context: ApiContext,
    http: Request,
    operation: Operation,
    *,
    wait: bool | None,
    subscription_id: str,
    resource_group: str,
    provider_namespace: str,
    resource_type: str,
    resource_name: str,
    api_version: str,
    body: ResourceBody | ActionBody | None = None,
    action: str | None = None,
) -> JSONResponse:
    request = arm.resource_request(
        subscription_id=subscription_id,
        resource_group=resource_group,
        provider_namespace=provider_namespace,
        resource_type=resource_type,
        resource_name=resource_name,
        api_version=api_version,
        body=body,
        action=action,
    )
    return await dispatch(context, http, operation, request, wait=wait)


@router.put(
    RESOURCE,
    status_code=201,
    responses={**RESPONSES, 201: {"description": "Created or updated"}},
    summary="Create or update a resource",
)
async def put_resource(
    http: Request,
    context: Context,
    subscription_id: Subscription,
    resource_group: Group,
    provider_namespace: Namespace,
    resource_type: ResourceType,
    resource_name: Name,
    body: ResourceBody,
    api_version: ApiVersion,
    wait: Wait = None,
) -> JSONResponse:
    return await _run(
        context,
        http,
        "create",
        wait=wait,
        subscription_id=subscription_id,
        resource_group=resource_group,
        provider_namespace=provider_namespace,
        resource_type=resource_type,
        resource_name=resource_name,
        api_version=api_version,
        body=body,
    )


@router.get(RESOURCE, responses=RESPONSES, summary="Get a resource")
async def get_resource(
    http: Request,
    context: Context,
    subscription_id: Subscription,
    resource_group: Group,
    provider_namespace: Namespace,
    resource_type: ResourceType,
    resource_name: Name,
    api_version: ApiVersion,
    wait: Wait = None,
) -> JSONResponse:
    return await _run(
        context,
        http,
        "get",
        wait=wait,
        subscription_id=subscription_id,
        resource_group=resource_group,
        provider_namespace=provider_namespace,
        resource_type=resource_type,
        resource_name=resource_name,
        api_version=api_version,
    )


@router.delete(RESOURCE, responses=RESPONSES, summary="Delete a resource")
async def delete_resource(
    http: Request,
    context: Context,
    subscription_id: Subscription,
    resource_group: Group,
    provider_namespace: Namespace,
    resource_type: ResourceType,
    resource_name: Name,
    api_version: ApiVersion,
    wait: Wait = None,
) -> JSONResponse:
    return await _run(
        context,
        http,
        "delete",
        wait=wait,
        subscription_id=subscription_id,
        resource_group=resource_group,
        provider_namespace=provider_namespace,
        resource_type=resource_type,
        resource_name=resource_name,
        api_version=api_version,
    )


@router.get(COLLECTION, responses=RESPONSES, summary="List the resources of a type")
async def list_resources(
    http: Request,
    context: Context,
    subscription_id: Subscription,
    resource_group: Group,
    provider_namespace: Namespace,
    resource_type: ResourceType,
    api_version: ApiVersion,
    wait: Wait = None,
) -> JSONResponse:
    return await _run(
        context,
        http,
        "list",
        wait=wait,
        subscription_id=subscription_id,
        resource_group=resource_group,
        provider_namespace=provider_namespace,
        resource_type=resource_type,
        resource_name=arm.LIST_PLACEHOLDER_NAME,
        api_version=api_version,
    )


@router.post(RESOURCE + "/{action}", responses=RESPONSES, summary="Run an action on a resource")
async def post_action(
    http: Request,
    context: Context,
    subscription_id: Subscription,
    resource_group: Group,
    provider_namespace: Namespace,
    resource_type: ResourceType,
    resource_name: Name,
    action: Annotated[str, Path(description="Action name, e.g. restart")],
    api_version: ApiVersion,
    body: Annotated[ActionBody | None, Body()] = None,
    wait: Wait = None,
) -> JSONResponse:
    return await _run(
        context,
        http,
        "action",
        wait=wait,
        subscription_id=subscription_id,
        resource_group=resource_group,
        provider_namespace=provider_namespace,
        resource_type=resource_type,
        resource_name=resource_name,
        api_version=api_version,
        body=body,
        action=action,
    )


async def _run_group(
    context: ApiContext,
    http: Request,
    operation: Operation,
    *,
    wait: bool | None,
    subscription_id: str,
    resource_group: str,
    api_version: str,
    body: ResourceBody | None = None,
) -> JSONResponse:
    namespace, _, resource_type = context.settings.resource_group_provider.partition("/")
    return await _run(
        context,
        http,
        operation,
        wait=wait,
        subscription_id=subscription_id,
        resource_group=resource_group,
        provider_namespace=namespace,
        resource_type=resource_type,
        resource_name=resource_group,
        api_version=api_version,
        body=body,
    )


@router.put(
    GROUP,
    status_code=201,
    responses={**RESPONSES, 201: {"description": "Created or updated"}},
    summary="Create or update a resource group",
)
async def put_resource_group(
    http: Request,
    context: Context,
    subscription_id: Subscription,
    resource_group: Group,
    body: ResourceBody,
    api_version: ApiVersion,
    wait: Wait = None,
) -> JSONResponse:
    return await _run_group(
        context,
        http,
        "create",
        wait=wait,
        subscription_id=subscription_id,
        resource_group=resource_group,
        api_version=api_version,
        body=body,
    )


@router.get(GROUP, responses=RESPONSES, summary="Get a resource group")
async def get_resource_group(
    http: Request,
    context: Context,
    subscription_id: Subscription,
    resource_group: Group,
    api_version: ApiVersion,
    wait: Wait = None,
) -> JSONResponse:
    return await _run_group(
        context,
        http,
        "get",
        wait=wait,
        subscription_id=subscription_id,
        resource_group=resource_group,
        api_version=api_version,
    )


@router.delete(GROUP, responses=RESPONSES, summary="Delete a resource group")
async def delete_resource_group(
    http: Request,
    context: Context,
    subscription_id: Subscription,
    resource_group: Group,
    api_version: ApiVersion,
    wait: Wait = None,
) -> JSONResponse:
    return await _run_group(
        context,
        http,
        "delete",
        wait=wait,
        subscription_id=subscription_id,
        resource_group=resource_group,
        api_version=api_version,
    )
