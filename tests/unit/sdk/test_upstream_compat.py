"""Code written for the upstream ITL ControlPlane SDK runs unchanged, as a client would run it."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest
from fastapi.testclient import TestClient

from itl_controlplane_sdk import (
    ResourceListResponse,
    ResourceProvider,
    ResourceProviderRegistry,
    ResourceRequest,
    ResourceResponse,
)
from itl_controlplane_sdk.api import ApiSettings, create_app
from itl_controlplane_sdk.api.failures import from_job_error
from itl_controlplane_sdk.workers import JobStatus

V = "api-version=2023-01-01"
RESOURCE = "/subscriptions/s1/resourceGroups/rg1/providers/ITL.Plain/Thing/t1"


class PlainProvider(ResourceProvider):
    """An upstream-style provider: the four resource operations and no actions."""

    def __init__(self) -> None:
        super().__init__("ITL.Plain")

    async def create_or_update_resource(self, request: ResourceRequest) -> ResourceResponse:
        return ResourceResponse(
            id=request.resource_id,
            name=request.resource_name,
            type="ITL.Plain/Thing",
            location=request.location,
        )

    async def get_resource(self, request: ResourceRequest) -> ResourceResponse:
        return await self.create_or_update_resource(request)

    async def list_resources(self, request: ResourceRequest) -> ResourceListResponse:
        return ResourceListResponse(value=[])

    async def delete_resource(self, request: ResourceRequest) -> ResourceResponse:
        return await self.create_or_update_resource(request)


def test_root_exports_version_and_resource_not_found() -> None:
    code = (
        "from itl_controlplane_sdk import ResourceNotFoundError, __version__\n"
        "from itl_controlplane_sdk.workers import ResourceNotFoundError as W\n"
        "assert ResourceNotFoundError is W\n"
        "print(__version__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == version("itl-controlplane-workers")


async def test_a_provider_without_actions_refuses_actions_clearly() -> None:
    request = ResourceRequest(
        subscription_id="s1",
        resource_group="rg1",
        provider_namespace="ITL.Plain",
        resource_type="Thing",
        resource_name="t1",
        action="restart",
    )

    with pytest.raises(NotImplementedError, match=r"ITL\.Plain supports no action 'restart'"):
        await PlainProvider().execute_action(request)


def test_the_api_answers_an_unsupported_action_with_400() -> None:
    registry = ResourceProviderRegistry()
    registry.register_provider("ITL.Plain", "Thing", PlainProvider())

    with TestClient(create_app(ApiSettings(AUTH_MODE="none"), providers=registry)) as client:
        assert client.put(f"{RESOURCE}?{V}", json={"location": "we"}).status_code == 201
        response = client.post(f"{RESOURCE}/restart?{V}")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "UnsupportedAction"
    assert "supports no action 'restart'" in response.json()["error"]["message"]


def test_an_offloaded_unsupported_action_maps_to_400() -> None:
    error = from_job_error(
        JobStatus.FAILED, "UnsupportedActionError: ITL.Plain supports no action", retry_after=1
    )

    assert (error.status_code, error.code) == (400, "UnsupportedAction")
