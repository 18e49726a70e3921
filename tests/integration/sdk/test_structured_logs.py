"""LOG_FORMAT=json: a worker process's lines are JSON, job lines name the job and its trace,
and the broker password never appears, not even in a provider's exception text."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from itl_controlplane_sdk import ResourceRequest
from itl_controlplane_sdk.workers import JobQueue
from itl_harness.workers import WorkerProcess
from tests.support.otlp import OtlpReceiver
from tests.support.requests import demo_request

pytestmark = pytest.mark.integration

SECRET = "Sup3r-S3cret-pw"


def _lines(worker: WorkerProcess) -> list[dict[str, Any]]:
    text = worker.log()
    assert SECRET not in text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _wait_for_line(worker: WorkerProcess, predicate: Any, what: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while True:
        lines = _lines(worker)
        if any(predicate(line) for line in lines):
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line {what}:\n{worker.log()}")
        time.sleep(0.05)


async def test_json_job_lines_carry_job_trace_worker_and_pool_without_secrets(
    producer: JobQueue, worker_process, rabbitmq_url: str
) -> None:
    # A failover list whose second address carries a password: the worker connects to the
    # first, and the provider's error quotes the whole variable.
    url = f"{rabbitmq_url},amqp://leaky:{SECRET}@127.0.0.1:1/"
    with OtlpReceiver() as receiver:
        worker = worker_process(
            "json-1",
            RABBITMQ_URL=url,
            LOG_FORMAT="json",
            WORKER_POOL="team-a/json-pool",
            WORKER_PROVIDERS="tests.support.leaky_provider:register",
            **receiver.env(),
        ).start()
        request = ResourceRequest.model_validate(
            {**demo_request("leaky").model_dump(), "provider_namespace": "ITL.Leak"}
        )
        job_id = await producer.submit_job("ITL.Leak", "Job", "create", request)
        result = await producer.get_result(job_id, timeout=15)
        assert result is not None and result.status.value == "failed"
        lines = _wait_for_line(
            worker, lambda line: line.get("job_id") == job_id, f"about job {job_id}"
        )
        spans = receiver.wait_for(
            lambda got: any(s.name == "process_job" for s in got), 15, "the job's span"
        )

    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
        assert (line["worker_id"], line["pool"]) == ("json-1", "team-a/json-pool"), line
    job_lines = [line for line in lines if line.get("job_id") == job_id]
    (process,) = [s for s in spans if s.name == "process_job"]
    for line in job_lines:
        assert line["trace_id"] == process.trace_id, line
    failure = next(line for line in job_lines if "could not reach" in line["message"])
    assert "leaky:***@127.0.0.1:1" in failure["message"]
    assert failure["level"] == "WARNING"
