"""configure_logging: plain or JSON lines, job ids from the job's context, secrets scrubbed."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from itl_controlplane_sdk import logs

URL = "amqp://svc:pa55-word@broker:5672/vh"
TOKEN = "admin-t0ken-value"


@pytest.fixture
def root_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _fail_quoting_secrets() -> None:
    log = logging.getLogger("itl_controlplane_sdk.test")
    try:
        raise ConnectionError(f"cannot reach {URL} with {TOKEN}")
    except ConnectionError:
        log.exception("connecting failed: %s", URL)


def test_json_lines_carry_fields_and_job_ids_and_no_secret(
    root_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure_logging(
        "INFO", fmt="json", fields={"worker_id": "w-1", "pool": "ns/p"}, secrets=[URL, TOKEN]
    )
    logging.getLogger("itl_controlplane_sdk.test").info("outside a job")
    with logs.job_context("job-42"):
        _fail_quoting_secrets()

    err = capsys.readouterr().err
    assert "pa55-word" not in err and TOKEN not in err
    outside, inside = (json.loads(line) for line in err.splitlines())
    assert outside["message"] == "outside a job" and "job_id" not in outside
    assert (outside["worker_id"], outside["pool"], outside["level"]) == ("w-1", "ns/p", "INFO")
    assert inside["job_id"] == "job-42"
    assert inside["message"] == "connecting failed: amqp://svc:***@broker:5672/vh"
    assert (
        "ConnectionError: cannot reach amqp://svc:***@broker:5672/vh with ***" in inside["exc_info"]
    )


def test_plain_lines_keep_their_shape_and_lose_the_secrets(
    root_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure_logging("INFO", context="w-1", secrets=[URL, TOKEN])
    _fail_quoting_secrets()
    err = capsys.readouterr().err
    assert "pa55-word" not in err and TOKEN not in err
    assert " ERROR itl_controlplane_sdk.test [w-1] connecting failed: amqp://svc:***@" in err
