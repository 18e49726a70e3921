"""Pure pieces of the SDK: models, results, envelopes, ids, redaction, backoff, settings."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from itl_controlplane_sdk import ProvisioningState, ResourceRequest, ResourceResponse
from itl_controlplane_sdk.errors import (
    JobTimeoutError,
    PermanentJobError,
    RetryableJobError,
    UndecodableJobError,
    is_retryable,
)
from itl_controlplane_sdk.redaction import redact_url, scrub
from itl_controlplane_sdk.workers import JobResult, JobStatus, WorkerSettings
from itl_controlplane_sdk.workers.consumer import coerce_result, retry_delay_ms
from itl_controlplane_sdk.workers.envelope import (
    JobEnvelope,
    decode_job,
    job_id_time,
    job_owned_by,
    new_job_id,
)


def request() -> ResourceRequest:
    return ResourceRequest(
        subscription_id="s",
        resource_group="rg",
        resource_type="ResourceGroup",
        resource_name="n",
        location="westeurope",
    )


def test_job_result_round_trips_through_dict_and_json() -> None:
    original = JobResult(job_id="123", status=JobStatus.COMPLETED, result={"id": "rg-123"})

    data = json.loads(json.dumps(original.to_dict()))
    restored = JobResult.from_dict(data)

    assert restored == original
    assert data["status"] == "completed"
    assert original.timestamp.tzinfo is UTC


def test_a_result_record_is_compact_json_that_reads_back_the_same() -> None:
    original = JobResult("123", JobStatus.FAILED, result={"id": "rg 1"}, error="no: quota")

    record = original.to_json()

    assert JobResult.from_dict(json.loads(record)) == original
    assert b'": ' not in record and b', "' not in record  # no space after a key or an item
    assert b'"error":"no: quota"' in record  # spaces inside values stay


def test_provisioning_state_is_json_serialisable() -> None:
    response = ResourceResponse(id="x", provisioning_state=ProvisioningState.CREATING)

    dumped = json.loads(json.dumps(response.model_dump(mode="json")))

    assert dumped["provisioning_state"] == "Creating"
    assert json.dumps({"state": ProvisioningState.SUCCEEDED}) == '{"state": "Succeeded"}'


def test_resource_request_names_the_bad_field() -> None:
    with pytest.raises(ValueError, match="resource_name"):
        ResourceRequest(
            subscription_id="s", resource_group="rg", resource_type="t", resource_name=""
        )


def test_envelope_round_trip_and_decode_errors_name_the_problem() -> None:
    envelope = JobEnvelope(
        job_id="j1",
        provider_namespace="ITL.Core",
        resource_type="ResourceGroup",
        operation="create",
        request=request(),
        priority=7,
    )
    assert decode_job(envelope.to_json()) == envelope

    with pytest.raises(UndecodableJobError, match="not JSON"):
        decode_job(b"\xff\x00")
    with pytest.raises(UndecodableJobError, match="not a JSON object"):
        decode_job(b"[]")
    with pytest.raises(UndecodableJobError, match="operation"):
        decode_job(envelope.to_json().replace(b'"create"', b'"explode"'))
    with pytest.raises(UndecodableJobError, match="version 99"):
        decode_job(json.dumps({**json.loads(envelope.to_json()), "version": 99}).encode())


def test_job_ids_are_unique_and_carry_their_creation_time() -> None:
    before = time.time()
    ids = [new_job_id() for _ in range(1000)]

    assert len(set(ids)) == 1000
    stamp = job_id_time(ids[0])
    assert stamp is not None and before - 0.01 <= stamp <= time.time() + 0.01
    assert job_id_time("not-a-uuid") is None
    assert job_id_time("6f1c1f7e-3a34-4c1c-9d3e-2a3b4c5d6e7f") is None  # version 4


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://user:pw@host:5672/vh", "amqp://user:***@host:5672/vh"),
        ("amqp://host/", "amqp://host/"),
        ("amqps://u:p%40ss@broker/", "amqps://u:***@broker/"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_scrub_removes_url_and_password_from_free_text() -> None:
    url = "amqp://bob:hunter2@10.1.2.3/"
    text = f"failed to connect to {url}: bad password hunter2"

    assert "hunter2" not in scrub(text, url)


def test_retry_backoff_doubles_and_is_capped() -> None:
    assert [retry_delay_ms(a, 1.0) for a in (1, 2, 3, 4)] == [1000, 2000, 4000, 8000]
    assert retry_delay_ms(30, 1.0) == 300_000


def test_error_classification() -> None:
    assert is_retryable(RetryableJobError("x"))
    assert is_retryable(ConnectionResetError())
    assert is_retryable(TimeoutError())
    assert not is_retryable(PermanentJobError("x"))
    assert not is_retryable(JobTimeoutError("x"))
    assert not is_retryable(ValueError("No provider found for a/b"))
    assert not is_retryable(KeyError("x"))


def test_callback_results_may_be_process_job_dicts() -> None:
    stamp = datetime.now(UTC).isoformat()
    result = coerce_result("j", {"status": "failed", "error": "boom", "timestamp": stamp})

    assert result.status is JobStatus.FAILED and result.error == "boom"
    with pytest.raises(TypeError, match="expected JobResult"):
        coerce_result("j", 42)


def test_worker_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_ID", "pod-7")
    monkeypatch.setenv("RABBITMQ_URL", "amqp://u:secret@mq/")
    monkeypatch.setenv("MAX_CONCURRENT_JOBS", "4")
    monkeypatch.setenv("JOB_TIMEOUT", "600")
    monkeypatch.setenv("WORKER_PROVIDERS", "a.b:c, d.e:f")
    monkeypatch.setenv("JOB_BINDINGS", "provider.ITL.Compute.#")

    settings = WorkerSettings()

    assert settings.worker_id == "pod-7"
    assert settings.max_concurrent_jobs == 4
    assert settings.job_timeout == 600
    assert settings.effective_drain_timeout == 600
    assert settings.providers == ["a.b:c", "d.e:f"]
    assert settings.job_bindings == ["provider.ITL.Compute.#"]
    assert "secret" not in repr(settings)
    assert settings.health_check_port == 8001


def test_worker_id_is_generated_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKER_ID", raising=False)

    assert WorkerSettings().worker_id.startswith("worker-")
    assert WorkerSettings().worker_id != WorkerSettings().worker_id


def test_invalid_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_CONCURRENT_JOBS", "0")

    with pytest.raises(ValueError, match="MAX_CONCURRENT_JOBS"):
        WorkerSettings()


def test_env_names_come_from_the_settings_model() -> None:
    assert WorkerSettings.env_name("worker_id") == "WORKER_ID"
    assert WorkerSettings.env_name("health_check_port") == "HEALTH_CHECK_PORT"
    assert WorkerSettings.env_name("job_timeout") == "JOB_TIMEOUT"
    assert WorkerSettings.env_name("pool_name") == "WORKER_POOL"


def test_job_ids_are_bound_to_their_subscription() -> None:
    ids = {new_job_id("Sub-A") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(job_owned_by(job_id, "sub-a") for job_id in ids)  # case-insensitive
    assert not any(job_owned_by(job_id, "sub-b") for job_id in ids)
    assert all(job_id_time(job_id) is not None for job_id in ids)
    assert not job_owned_by("not-a-uuid", "sub-a")
