"""Cancelling, timing out and dead-lettering offloaded operations, through the API."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import (
    ADMIN_TOKEN,
    API_VERSION,
    ApiFactory,
    WorkerFactory,
    job_id_of,
    resource_path,
)
from tests.integration.api.test_api_offloading import poll

pytestmark = pytest.mark.integration


def submit(client: httpx.Client, namespace: str, name: str, **body: Any) -> str:
    return job_id_of(client.put(f"{resource_path(namespace, name)}?{API_VERSION}", json=body))


def test_cancel_a_pending_job_and_the_worker_skips_it(
    api_process: ApiFactory,
    worker_process: WorkerFactory,
    offloading_env: dict[str, str],
    namespace: str,
) -> None:
    worker = worker_process("pod-cancel", MAX_CONCURRENT_JOBS="1").start()
    api = api_process("api-cancel", offloading_env).start(wait_for="/health")
    with api.client() as client:
        running = submit(client, namespace, "busy", seconds=2)
        poll(client, running, until={"processing"})
        waiting = submit(client, namespace, "waiting")

        refused = client.post(f"/operations/{running}/cancel")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "OperationNotCancellable"

        cancelled = client.post(f"/operations/{waiting}/cancel?{API_VERSION}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["error"]["code"] == "OperationCancelled"

        assert poll(client, running, until={"completed"})["result"]["name"] == "busy"
        deadline = time.monotonic() + 10
        while "skipping job " + waiting not in worker.log():
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.1)
        assert client.get(f"/operations/{waiting}").json()["status"] == "cancelled"
        assert client.post(f"/operations/{waiting}/cancel").status_code == 409
    assert worker.status()["jobs_processed"] == 1


def test_a_job_no_worker_starts_within_job_timeout_fails_as_timed_out(
    api_process: ApiFactory,
    worker_process: WorkerFactory,
    offloading_env: dict[str, str],
    namespace: str,
) -> None:
    api = api_process("api-timeout", offloading_env, JOB_TIMEOUT="1").start(wait_for="/health")
    with api.client() as client:
        job_id = submit(client, namespace, "stale")
        assert client.get(f"/operations/{job_id}").json()["status"] == "pending"
        time.sleep(1.2)
        failed = client.get(f"/operations/{job_id}").json()
        assert failed["status"] == "failed"
        assert failed["error"]["code"] == "OperationTimedOut"
        assert "JOB_TIMEOUT=1s" in failed["error"]["message"]

        # A worker that starts later skips the expired job instead of running it.
        worker = worker_process("pod-late").start()
        deadline = time.monotonic() + 10
        while "skipping job " + job_id not in worker.log():
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.1)
        assert client.get(f"/operations/{job_id}").json()["status"] == "failed"
    assert worker.status()["jobs_processed"] == 0


def test_a_job_that_runs_past_the_worker_timeout_fails_with_the_reason(
    api_process: ApiFactory,
    worker_process: WorkerFactory,
    offloading_env: dict[str, str],
    namespace: str,
) -> None:
    worker_process("pod-strict", JOB_TIMEOUT="0.5").start()
    api = api_process("api-strict", offloading_env).start(wait_for="/health")
    with api.client() as client:
        failed = poll(client, submit(client, namespace, "long", seconds=3), until={"failed"})
        assert failed["error"]["code"] == "OperationTimedOut"
        assert "exceeded the job timeout of 0.5s" in failed["error"]["message"]
        waited = client.put(
            f"{resource_path(namespace, 'long-2')}?{API_VERSION}&wait=true", json={"seconds": 3}
        )
        assert waited.status_code == 504
        assert waited.json()["error"]["code"] == "OperationTimedOut"


@pytest.mark.usefixtures("clean_dlq")
def test_dead_letters_are_listed_and_redriven_behind_the_admin_token(
    api_process: ApiFactory,
    worker_process: WorkerFactory,
    offloading_env: dict[str, str],
    namespace: str,
) -> None:
    worker = worker_process("pod-dlq", JOB_MAX_ATTEMPTS="1").start()
    api = api_process("api-dlq", offloading_env).start(wait_for="/health")
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with api.client() as client:
        job_id = submit(client, namespace, "flaky", fail_attempts=1)
        assert poll(client, job_id, until={"failed"})["error"]["code"] == "OperationFailed"

        assert client.get("/admin/dlq").status_code == 401
        wrong = client.get("/admin/dlq", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.headers["WWW-Authenticate"] == "Bearer"
        listed = client.get("/admin/dlq", headers=admin).json()
        mine = [m for m in listed["value"] if m["job_id"] == job_id]
        assert len(mine) == 1
        assert "simulated transient failure" in mine[0]["reason"]

        redriven = client.post("/admin/dlq/redrive", headers=admin)
        assert redriven.status_code == 200, redriven.text
        assert redriven.json()["redriven"] >= 1
        deadline = time.monotonic() + 10
        while worker.status()["jobs_processed"] < 1:
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.1)
        remaining = client.get("/admin/dlq", headers=admin).json()["value"]
        assert job_id not in {m["job_id"] for m in remaining}


def test_admin_endpoints_are_disabled_without_a_token(
    api_process: ApiFactory, offloading_env: dict[str, str]
) -> None:
    env = {k: v for k, v in offloading_env.items() if k != "ADMIN_TOKEN"}
    api = api_process("api-noadmin", env).start(wait_for="/health")
    with api.client() as client:
        response = client.post("/admin/dlq/redrive", headers={"Authorization": "Bearer x"})
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "AdminDisabled"
