"""The API's side of observability, as processes: its HTTP span starts the job's trace, which
the worker process continues, and LOG_FORMAT=json makes every line of it JSON."""

from __future__ import annotations

import json

from tests.integration.api.conftest import (
    ADMIN_TOKEN,
    API_VERSION,
    ApiFactory,
    WorkerFactory,
    job_id_of,
    resource_path,
)
from tests.support.otlp import OtlpReceiver


def test_the_request_the_submit_and_the_worker_share_one_trace(
    api_process: ApiFactory,
    worker_process: WorkerFactory,
    offloading_env: dict[str, str],
    namespace: str,
) -> None:
    with OtlpReceiver() as receiver:
        worker_process("pod-traced", **receiver.env()).start()
        api = api_process("api-traced", offloading_env, LOG_FORMAT="json", **receiver.env()).start(
            wait_for="/health"
        )
        with api.client() as client:
            created = client.put(
                f"{resource_path(namespace, 'traced')}?{API_VERSION}",
                json={"location": "westeurope", "properties": {}},
            )
            job_id = job_id_of(created)
        spans = receiver.wait_for(
            lambda got: (
                any(s.name == "process_job" for s in got)
                and any(s.name == "submit_job" for s in got)
            ),
            20,
            "the API's and the worker's spans",
        )
        api.stop()

    (submit,) = [s for s in spans if s.name == "submit_job"]
    (process,) = [s for s in spans if s.name == "process_job"]
    (request,) = [s for s in spans if s.span_id == submit.parent_span_id]
    assert request.service == "itl-api" and submit.service == "itl-api"
    assert request.name.startswith("PUT /subscriptions/")
    assert request.attributes["itl.job.id"] == job_id
    assert (process.trace_id, process.parent_span_id) == (request.trace_id, submit.span_id)
    assert process.service == "itl-worker"

    text = api.log()
    assert ADMIN_TOKEN not in text
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert any("Uvicorn running" in line["message"] for line in lines)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
