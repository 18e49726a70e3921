"""Pure pieces of the API: settings, failure mapping, and the worker-side cancellation guard."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from itl_controlplane_sdk.api import ApiSettings
from itl_controlplane_sdk.api.auth import granted_subscriptions
from itl_controlplane_sdk.api.failures import from_exception, from_job_error
from itl_controlplane_sdk.errors import PermanentJobError, RetryableJobError
from itl_controlplane_sdk.workers.cancellation import MARKER_DELAY_SECONDS, expired, guarded
from itl_controlplane_sdk.workers.results import JobResult, JobStatus


def test_settings_read_the_reference_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_MODE", "none")
    monkeypatch.setenv("OFFLOADING_ENABLED", "true")
    monkeypatch.setenv("RABBITMQ_URL", "amqp://u:p@broker/")
    monkeypatch.setenv("JOB_TIMEOUT", "12.5")
    monkeypatch.setenv("WORKER_PROVIDERS", "a.b:c, d.e:f")
    settings = ApiSettings()
    assert settings.offloading_enabled is True
    assert settings.rabbitmq_url.get_secret_value() == "amqp://u:p@broker/"
    assert "p@" not in repr(settings)
    assert settings.job_timeout == 12.5
    assert settings.providers == ["a.b:c", "d.e:f"]
    assert ApiSettings.env_name("offloading_enabled") == "OFFLOADING_ENABLED"
    assert ApiSettings.env_name("providers") == "API_PROVIDERS"


@pytest.mark.parametrize(
    ("status", "error", "http", "code"),
    [
        (JobStatus.CANCELLED, "cancelled by request", 409, "OperationCancelled"),
        (
            JobStatus.FAILED,
            "JobTimeoutError: job x exceeded the job timeout",
            504,
            "OperationTimedOut",
        ),
        (JobStatus.FAILED, "timed out: no worker started the job", 504, "OperationTimedOut"),
        (JobStatus.FAILED, "ResourceNotFoundError: resource /x not found", 404, "ResourceNotFound"),
        (JobStatus.FAILED, "gave up after 3 attempts: boom", 503, "ProviderUnavailable"),
        (JobStatus.FAILED, "PermanentJobError: bad input", 400, "OperationFailed"),
        (JobStatus.FAILED, None, 400, "OperationFailed"),
    ],
)
def test_job_failures_map_to_status_and_code(
    status: JobStatus, error: str | None, http: int, code: str
) -> None:
    mapped = from_job_error(status, error, retry_after=3)
    assert (mapped.status_code, mapped.code) == (http, code)


@pytest.mark.parametrize(
    ("exc", "http"),
    [
        (KeyError("x"), 404),
        (TimeoutError(), 504),
        (RetryableJobError("later"), 503),
        (ConnectionError("down"), 503),
        (PermanentJobError("no"), 400),
        (ValueError("bad"), 400),
        (RuntimeError("bug"), 500),
    ],
)
def test_provider_exceptions_map_to_status(exc: Exception, http: int) -> None:
    assert from_exception(exc, retry_after=3).status_code == http


def test_expired_compares_the_envelope_deadline() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    past = {"deadline": (now - timedelta(seconds=1)).isoformat()}
    future = {"deadline": (now + timedelta(seconds=1)).isoformat()}
    assert expired("j", {}, now) is None
    assert expired("j", future, now) is None
    stale = expired("j", past, now)
    assert stale is not None and stale.status is JobStatus.FAILED
    assert "timed out" in (stale.error or "")


class FakeWatcher:
    def __init__(self, cancelled: dict[str, JobResult]) -> None:
        self._cancelled = cancelled

    def cancelled(self, job_id: str) -> JobResult | None:
        return self._cancelled.get(job_id)


async def test_guard_skips_cancelled_jobs_and_marks_started_ones() -> None:
    ran: list[str] = []
    marked: list[str] = []

    async def callback(job_id: str, payload: dict[str, Any]) -> JobResult:
        ran.append(job_id)
        await asyncio.sleep(float(payload.get("seconds", 0)))
        return JobResult(job_id, JobStatus.COMPLETED)

    async def mark(job_id: str) -> None:
        marked.append(job_id)
        raise ConnectionError("markers are best effort")

    watcher = FakeWatcher({"gone": JobResult("gone", JobStatus.CANCELLED, error="by request")})
    run = guarded(callback, watcher=watcher, mark_started=mark)  # type: ignore[arg-type]
    skipped = await run("gone", {})
    assert skipped.status is JobStatus.CANCELLED and skipped.error == "by request"
    assert (await run("quick", {})).status is JobStatus.COMPLETED
    slow = {"seconds": MARKER_DELAY_SECONDS * 4}
    assert (await run("slow", slow)).status is JobStatus.COMPLETED
    # Only a job still running after the marker delay is marked as processing.
    assert ran == ["quick", "slow"] and marked == ["slow"]


def test_authentication_is_required_unless_explicitly_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AUTH_MODE", "AUTH_ISSUER", "AUTH_AUDIENCE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="AUTH_MODE=oidc \\(the default\\) needs AUTH_ISSUER"):
        ApiSettings()
    with pytest.raises(ValueError, match="only asymmetric algorithms"):
        ApiSettings(AUTH_MODE="none", AUTH_ALGORITHMS="RS256,HS256")
    assert ApiSettings(AUTH_MODE="none").auth_mode == "none"


def test_claim_values_map_to_subscriptions() -> None:
    claims = {"roles": ["team-a", "other", 7], "subscriptions": "Sub-1"}
    assert granted_subscriptions(claims, "subscriptions", {}) == {"sub-1"}
    mapping = {"team-a": ["S1", "s2"], "admins": ["*"]}
    assert granted_subscriptions(claims, "roles", mapping) == {"s1", "s2"}
    assert granted_subscriptions({"roles": "admins"}, "roles", mapping) == {"*"}
    assert granted_subscriptions({}, "roles", mapping) == frozenset()
