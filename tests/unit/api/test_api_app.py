"""The app without a broker: routes, ARM errors, limits and metrics, through an ASGI client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from itl_controlplane_sdk import ResourceProviderRegistry
from itl_controlplane_sdk.api import ApiSettings, create_app
from itl_controlplane_sdk.providers.examples import register_example_providers

V = "api-version=2023-01-01"
GROUP = "/subscriptions/s1/resourceGroups/rg1"
RESOURCE = f"{GROUP}/providers/ITL.Core/ResourceGroup/rg1"


@pytest.fixture
def client() -> Iterator[TestClient]:
    registry = ResourceProviderRegistry()
    register_example_providers(registry)
    settings = ApiSettings(
        AUTH_MODE="none", ADMIN_TOKEN="secret", API_MAX_BODY_BYTES=1024, JOB_TIMEOUT=1
    )
    with TestClient(create_app(settings, providers=registry)) as test_client:
        yield test_client


def test_resource_round_trip(client: TestClient) -> None:
    created = client.put(f"{RESOURCE}?{V}", json={"location": "we", "properties": {"a": 1}})
    assert created.status_code == 201
    assert created.json()["id"] == RESOURCE
    assert client.get(f"{RESOURCE}?{V}").json()["properties"] == {"a": 1}
    listed = client.get(f"{GROUP}/providers/ITL.Core/ResourceGroup?{V}").json()
    assert [r["name"] for r in listed["value"]] == ["rg1"]
    action = client.post(f"{RESOURCE}/restart?{V}").json()
    assert action["properties"] == {"action": "restart", "accepted": True}
    assert client.delete(f"{RESOURCE}?{V}").json()["provisioning_state"] == "Deleting"
    missing = client.get(f"{RESOURCE}?{V}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ResourceNotFound"


def test_resource_group_routes_use_the_resource_group_provider(client: TestClient) -> None:
    assert client.put(f"{GROUP}?{V}", json={"location": "we"}).status_code == 201
    assert client.get(f"{GROUP}?{V}").json()["type"] == "ITL.Core/ResourceGroup"
    assert client.get(f"{RESOURCE}?{V}").status_code == 200  # the same resource
    assert client.delete(f"{GROUP}?{V}").status_code == 200


@pytest.mark.parametrize(
    ("url", "code", "target"),
    [
        (RESOURCE, "MissingApiVersionParameter", "api-version"),
        (f"{RESOURCE}?api-version=yesterday", "InvalidApiVersionParameter", "api-version"),
    ],
)
def test_api_version_is_required(client: TestClient, url: str, code: str, target: str) -> None:
    response = client.get(url)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["target"] == target


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{", "body"),
        (b"[]", "body"),
        (b'{"location": 1}', "location"),
        (b'{"properties": []}', "properties"),
        (b'{"tags": {"k": []}}', "tags.k"),
    ],
)
def test_invalid_bodies_name_the_field(client: TestClient, body: bytes, field: str) -> None:
    response = client.put(
        f"{RESOURCE}?{V}", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "InvalidRequestContent"
    assert error["target"] == field
    assert error["message"].startswith(field)


def test_oversized_bodies_are_413(client: TestClient) -> None:
    response = client.put(f"{RESOURCE}?{V}", json={"pad": "x" * 2048})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "RequestEntityTooLarge"


def test_unknown_provider_is_404_with_the_registered_ones(client: TestClient) -> None:
    response = client.get(f"{GROUP}/providers/ITL.Nope/Thing/x?{V}")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "NoRegisteredProviderFound"
    assert "ITL.Core/ResourceGroup" in error["message"]


def test_provider_timeout_is_504(client: TestClient) -> None:
    response = client.put(f"{GROUP}/providers/ITL.Demo/Job/slow?{V}", json={"seconds": 5})
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "OperationTimedOut"


def test_provider_failures_map_to_arm_errors(client: TestClient) -> None:
    job = f"{GROUP}/providers/ITL.Demo/Job/j?{V}"
    permanent = client.put(job, json={"fail": "permanent"})
    assert permanent.status_code == 400
    assert permanent.json()["error"]["code"] == "OperationFailed"
    retryable = client.put(job, json={"fail": "retryable"})
    assert retryable.status_code == 503
    assert retryable.headers["Retry-After"] == "5"
    bad_input = client.put(job, json={"seconds": "soon"})
    assert bad_input.status_code == 400


def test_operations_and_admin_without_offloading(client: TestClient) -> None:
    assert client.get("/operations/x").json()["error"]["code"] == "OperationNotFound"
    assert client.get("/admin/dlq").status_code == 401
    admin = client.get("/admin/dlq", headers={"Authorization": "Bearer secret"})
    assert admin.json()["error"]["code"] == "OffloadingDisabled"


def test_unknown_routes_and_methods_have_the_arm_shape(client: TestClient) -> None:
    assert client.get("/nowhere").json()["error"]["code"] == "NotFound"
    assert client.patch(f"{RESOURCE}?{V}").json()["error"]["code"] == "MethodNotAllowed"


def test_health_metrics_and_openapi(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "healthy" and health["offloading"] is False
    client.get(f"{RESOURCE}?{V}")
    metrics = client.get("/metrics").text
    assert (
        'api_requests_total{method="GET",route="/subscriptions/{subscription_id}/resourceGroups/'
        '{resource_group}/providers/{provider_namespace}/{resource_type}/{resource_name}",'
        'status="404"} 1.0'
    ) in metrics
    assert "api_request_duration_seconds_bucket" in metrics
    paths = client.get("/openapi.json").json()["paths"]
    assert "/operations/{job_id}" in paths and "/admin/dlq/redrive" in paths
