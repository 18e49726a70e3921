"""Offloading mode end to end: API process -> RabbitMQ -> worker process -> results stream."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import (
    API_VERSION,
    ApiFactory,
    WorkerFactory,
    job_id_of,
    resource_path,
)

pytestmark = pytest.mark.integration


def poll(client: httpx.Client, job_id: str, *, until: set[str], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/operations/{job_id}?{API_VERSION}").json()
        if body["status"] in until or time.monotonic() > deadline:
            assert body["status"] in until, body
            return body
        time.sleep(0.05)


def test_async_round_trip_create_get_list_action_delete(
    api_process: ApiFactory,
    worker_process: WorkerFactory,
    offloading_env: dict[str, str],
    namespace: str,
) -> None:
    worker_process("pod-a").start()
    api = api_process("api-a", offloading_env).start(wait_for="/health")
    groups = f"/subscriptions/sub-1/resourceGroups/rg-1/providers/{namespace}/ResourceGroup"
    group = f"{groups}/rg-1"
    with api.client() as client:
        created = client.put(
            f"{group}?{API_VERSION}", json={"location": "westeurope", "properties": {"x": 1}}
        )
        assert created.status_code == 202, created.text
        location = created.headers["Location"]
        assert created.headers["Azure-AsyncOperation"] == location
        assert created.headers["Retry-After"] == "1"
        assert location.startswith(f"{api.url}/operations/") and location.endswith(API_VERSION)
        assert created.json()["provisioning_state"] == "Accepted"
        done = poll(client, job_id_of(created), until={"completed"})
        assert done["result"]["properties"] == {"x": 1}
        assert done["result"]["location"] == "westeurope"
        assert "error" not in done and done["end_time"] >= done["start_time"]

        fetched = client.get(f"{group}?{API_VERSION}")  # reads wait for the worker by default
        assert fetched.status_code == 200, fetched.text
        assert fetched.json()["properties"] == {"x": 1}
        listed = client.get(f"{groups}?{API_VERSION}")
        assert [r["name"] for r in listed.json()["value"]] == ["rg-1"]

        action = client.post(f"{group}/restart?{API_VERSION}", json={"force": True})
        assert poll(client, job_id_of(action), until={"completed"})["result"]["properties"] == {
            "action": "restart",
            "accepted": True,
        }

        deleted = client.delete(f"{group}?{API_VERSION}")
        assert poll(client, job_id_of(deleted), until={"completed"})["result"]["name"] == "rg-1"
        missing = client.get(f"{group}?{API_VERSION}")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "ResourceNotFound"

        later = client.get(f"{group}?{API_VERSION}&wait=false")
        failed = poll(client, job_id_of(later), until={"failed"})
        assert failed["error"]["code"] == "ResourceNotFound"
        assert "not found" in failed["error"]["message"]

        metrics = client.get("/metrics").text
    for operation, count in (("create", 1), ("get", 3), ("list", 1), ("action", 1)):
        assert f'api_jobs_submitted_total{{operation="{operation}"}} {count}.0' in metrics
    assert 'api_requests_total{method="PUT",route="/subscriptions/{subscription_id}' in metrics


def test_synchronous_wait_answers_like_the_in_process_mode(
    api_process: ApiFactory,
    worker_process: WorkerFactory,
    offloading_env: dict[str, str],
    namespace: str,
) -> None:
    worker_process("pod-sync").start()
    api = api_process("api-sync", offloading_env).start(wait_for="/health")
    with api.client() as client:
        created = client.put(
            f"{resource_path(namespace, 'job-1')}?{API_VERSION}&wait=true", json={"seconds": 0.2}
        )
        assert created.status_code == 201, created.text
        assert created.json()["properties"]["echo"] == {"seconds": 0.2}
        assert "job_id" not in created.json()

        failed = client.put(
            f"{resource_path(namespace, 'job-2')}?{API_VERSION}&wait=true",
            json={"fail": "permanent"},
        )
        assert failed.status_code == 400
        assert failed.json()["error"] == {
            "code": "OperationFailed",
            "message": "PermanentJobError: simulated permanent failure",
        }


def test_a_second_replica_answers_for_jobs_the_first_submitted(
    api_process: ApiFactory,
    worker_process: WorkerFactory,
    offloading_env: dict[str, str],
    namespace: str,
) -> None:
    worker_process("pod-replicas").start()
    first = api_process("api-1", offloading_env).start(wait_for="/health")
    second = api_process("api-2", offloading_env).start(wait_for="/health")
    with first.client() as one, second.client() as two:
        accepted = one.put(
            f"{resource_path(namespace, 'shared')}?{API_VERSION}", json={"seconds": 0.5}
        )
        job_id = job_id_of(accepted)
        assert poll(two, job_id, until={"pending", "processing", "completed"})
        done = two.get(f"/operations/{job_id}?{API_VERSION}&wait=true").json()
        assert done["status"] == "completed"
        assert done["result"]["name"] == "shared"

    # A replica started after the result was published still finds it.
    third = api_process("api-3", offloading_env).start(wait_for="/health")
    with third.client() as three:
        assert poll(three, job_id, until={"completed"})["result"]["name"] == "shared"


def test_operation_reports_processing_while_a_worker_runs_the_job(
    api_process: ApiFactory,
    worker_process: WorkerFactory,
    offloading_env: dict[str, str],
    namespace: str,
) -> None:
    worker_process("pod-slow").start()
    api = api_process("api-slow", offloading_env).start(wait_for="/health")
    with api.client() as client:
        path = resource_path(namespace, "slow")
        job_id = job_id_of(client.put(f"{path}?{API_VERSION}", json={"seconds": 2}))
        assert poll(client, job_id, until={"processing"})["status"] == "processing"
        assert poll(client, job_id, until={"completed"})["result"]["name"] == "slow"


def test_unknown_provider_is_404_and_nothing_is_submitted(
    api_process: ApiFactory, offloading_env: dict[str, str]
) -> None:
    api = api_process("api-404", offloading_env).start(wait_for="/health")
    with api.client() as client:
        response = client.put(
            f"{resource_path('ITL.Nowhere', 'x', 'Thing')}?{API_VERSION}", json={}
        )
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["code"] == "NoRegisteredProviderFound"
        assert "ITL.Nowhere/Thing" in error["message"]
        assert "api_jobs_submitted_total{" not in client.get("/metrics").text


def test_unknown_operations_are_404(
    api_process: ApiFactory, offloading_env: dict[str, str]
) -> None:
    api = api_process("api-ops", offloading_env).start(wait_for="/health")
    with api.client() as client:
        for job_id in ("not-a-job", "0b5c0a52-5b5e-4f43-9d3e-6a1f5e1ab000"):
            response = client.get(f"/operations/{job_id}")
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "OperationNotFound"
