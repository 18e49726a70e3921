"""Broker outages, bad input, and the in-process mode of a real API process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from itl_controlplane_sdk.workers import JobQueue
from itl_harness.workers import free_port
from tests.integration.api.conftest import (
    API_VERSION,
    ApiFactory,
    WorkerFactory,
    job_id_of,
    resource_path,
)
from tests.integration.api.test_api_offloading import poll
from tests.support.services import rabbitmqctl

pytestmark = pytest.mark.integration


async def queue_depth(queue: JobQueue) -> int:
    stats = await queue.get_queue_stats([queue.queue_name])
    return int(stats["queues"][queue.queue_name]["message_count"])


def test_the_api_starts_without_a_broker_and_answers_503(
    api_process: ApiFactory, offloading_env: dict[str, str], namespace: str
) -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    api = api_process("api-nobroker", offloading_env, RABBITMQ_URL=dead).start()
    with api.client() as client:
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["broker"] == "disconnected"
        response = client.put(f"{resource_path(namespace, 'x')}?{API_VERSION}", json={})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.json()["error"]["code"] == "ServiceUnavailable"
        assert client.get("/livez").status_code == 200
        assert "api_broker_connected 0.0" in client.get("/metrics").text


async def test_broker_restart_while_idle(
    api_process: ApiFactory,
    worker_process: WorkerFactory,
    offloading_env: dict[str, str],
    namespace: str,
    observer: JobQueue,
) -> None:
    worker = worker_process("pod-restart").start()
    api = api_process("api-restart", offloading_env).start(wait_for="/health")
    path = f"{resource_path(namespace, 'after-restart')}?{API_VERSION}"
    rabbitmqctl("stop_app")
    try:
        api.wait_status("/health", 503, 15)
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
            refused = await client.put(path, json={})
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "5"
    finally:
        rabbitmqctl("start_app")
    api.wait_status("/health", 200, 60)
    worker.wait_healthy(60)
    assert await observer.wait_until_connected(60)
    assert await queue_depth(observer) == 0  # the refused request left nothing behind
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        created = await client.put(path + "&wait=true", json={"seconds": 0})
    assert created.status_code == 201, created.text


@pytest.fixture
async def offloading_api(
    api_process: ApiFactory, offloading_env: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    api = api_process("api-input", offloading_env, API_MAX_BODY_BYTES="2048")
    api.start(wait_for="/health")
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        yield client


async def test_malformed_and_oversized_bodies_are_refused_and_nothing_is_submitted(
    offloading_api: httpx.AsyncClient, namespace: str, observer: JobQueue
) -> None:
    path = f"{resource_path(namespace, 'bad')}?{API_VERSION}"
    cases = [
        (b"{not json", 400, "InvalidRequestContent", "not valid JSON"),
        (b"[1, 2]", 400, "InvalidRequestContent", "body"),
        (b'{"location": 7}', 400, "InvalidRequestContent", "location"),
        (b'{"tags": {"a": 1}}', 400, "InvalidRequestContent", "tags.a"),
        (b'{"location": "' + b"x" * 65 + b'"}', 400, "InvalidRequestContent", "location"),
        (b'{"pad": "' + b"x" * 4096 + b'"}', 413, "RequestEntityTooLarge", "2048 bytes"),
    ]
    for body, status, code, fragment in cases:
        response = await offloading_api.put(
            path, content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == status, (body[:40], response.text)
        error = response.json()["error"]
        assert error["code"] == code and fragment in error["message"], error

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"pad": "'
        for _ in range(10):
            yield b"x" * 512
        yield b'"}'

    chunked = await offloading_api.put(
        path, content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert chunked.status_code == 413
    missing_version = await offloading_api.put(resource_path(namespace, "bad"), json={})
    assert missing_version.status_code == 400
    assert missing_version.json()["error"]["code"] == "MissingApiVersionParameter"
    long_name = await offloading_api.put(
        f"{resource_path(namespace, 'n' * 261)}?{API_VERSION}", json={}
    )
    assert long_name.status_code == 400
    assert long_name.json()["error"]["target"] == "resource_name"
    assert await queue_depth(observer) == 0


def test_in_process_mode_round_trip(
    api_process: ApiFactory, provider_env: dict[str, str], namespace: str
) -> None:
    env = {**provider_env, "OFFLOADING_ENABLED": "false"}
    api = api_process("api-local", env, API_RESOURCE_GROUP_PROVIDER=f"{namespace}/ResourceGroup")
    with api.start(wait_for="/health").client() as client:
        group = f"/subscriptions/sub-1/resourceGroups/rg-local?{API_VERSION}"
        created = client.put(group, json={"location": "westeurope", "properties": {"a": 1}})
        assert created.status_code == 201, created.text
        assert created.json()["properties"] == {"a": 1}
        assert client.get(group).json()["location"] == "westeurope"
        job = f"{resource_path(namespace, 'j1')}?{API_VERSION}"
        assert client.put(job, json={"seconds": 0}).status_code == 201
        assert client.post(job.replace("?", "/run?"), json={}).json()["name"] == "j1"
        listed = client.get(job.replace("/j1?", "?")).json()
        assert [r["name"] for r in listed["value"]] == ["*"]  # the Demo provider echoes the request
        assert client.delete(group).status_code == 200
        assert client.get(group).status_code == 404
        accepted = client.put(job + "&wait=false", json={})
        assert accepted.status_code == 201  # no 202 without offloading
        assert client.get("/operations/" + "0" * 8).status_code == 404


def test_job_ids_from_the_202_answer_match_the_location(
    api_process: ApiFactory,
    worker_process: WorkerFactory,
    offloading_env: dict[str, str],
    namespace: str,
) -> None:
    worker_process("pod-loc").start()
    api = api_process("api-loc", offloading_env).start(wait_for="/health")
    with api.client() as client:
        accepted = client.delete(f"{resource_path(namespace, 'gone')}?{API_VERSION}")
        job_id = job_id_of(accepted)
        assert accepted.headers["Location"].split("?")[0].endswith(f"/operations/{job_id}")
        followed = client.get(accepted.headers["Location"])
        assert followed.json()["name"] == job_id
        assert poll(client, job_id, until={"completed"})["status"] == "completed"
