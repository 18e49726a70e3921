"""One trace per job across processes: submitter -> AMQP headers -> worker process.

The test process submits with an in-memory tracer; real worker processes, configured only by
the standard OTEL_* variables, export over OTLP/HTTP to a receiver on 127.0.0.1. The worker's
``process_job`` span must be a child of the submitter's ``submit_job`` span on every attempt
of a retried job, with the retry and the result publish as its children.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from itl_controlplane_sdk import tracing
from itl_controlplane_sdk.workers import JobQueue
from tests.support.otlp import OtlpReceiver, ReceivedSpan, in_memory_tracing
from tests.support.requests import demo_request

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture
def memory() -> Iterator[InMemorySpanExporter]:
    with in_memory_tracing() as exporter:
        yield exporter


def _submit_span(memory: InMemorySpanExporter, job_id: str) -> tuple[str, str]:
    (span,) = [
        s
        for s in memory.get_finished_spans()
        if s.name == "submit_job" and s.attributes and s.attributes["itl.job.id"] == job_id
    ]
    assert span.kind is SpanKind.PRODUCER
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


def _children(spans: list[ReceivedSpan], parent: ReceivedSpan, name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.parent_span_id == parent.span_id and s.name == name]


async def test_a_job_is_one_trace_from_submitter_to_worker_process(
    producer: JobQueue, worker_process, receiver: OtlpReceiver, memory: InMemorySpanExporter
) -> None:
    worker_process("traced-1", **receiver.env()).start()
    job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request("plain"))
    assert (await producer.get_result(job_id, timeout=15)).status.value == "completed"
    trace_id, submit_span_id = _submit_span(memory, job_id)

    spans = receiver.wait_for(
        lambda got: any(s.name == "publish_result" for s in got), 15, "the worker's spans"
    )
    (process,) = [s for s in spans if s.name == "process_job"]
    assert process.trace_id == trace_id
    assert process.parent_span_id == submit_span_id
    assert process.service == "itl-worker"
    assert process.attributes == {
        "itl.job.id": job_id,
        "itl.job.provider": "ITL.Demo",
        "itl.job.resource_type": "Job",
        "itl.job.operation": "create",
        "itl.job.attempt": 1,
        "itl.job.outcome": "completed",
        "messaging.system": "rabbitmq",
        "messaging.message.id": job_id,
    }
    (publish,) = _children(spans, process, "publish_result")
    assert publish.trace_id == trace_id
    assert publish.attributes["itl.job.status"] == "completed"


async def test_every_attempt_of_a_retried_job_is_a_child_of_the_submit_span(
    producer: JobQueue, worker_process, receiver: OtlpReceiver, memory: InMemorySpanExporter
) -> None:
    worker_process("traced-2", JOB_RETRY_BASE_DELAY="0.05", **receiver.env()).start()
    request = demo_request("flaky", fail_attempts=1)
    job_id = await producer.submit_job("ITL.Demo", "Job", "create", request)
    assert (await producer.get_result(job_id, timeout=15)).status.value == "completed"
    trace_id, submit_span_id = _submit_span(memory, job_id)

    spans = receiver.wait_for(
        lambda got: (
            sum(s.name == "process_job" for s in got) == 2
            and any(s.name == "publish_result" for s in got)
        ),
        15,
        "two attempts and a result",
    )
    attempts = sorted(
        (s for s in spans if s.name == "process_job"), key=lambda s: s.attributes["itl.job.attempt"]
    )
    outcomes = [
        (a.attributes["itl.job.attempt"], a.attributes["itl.job.outcome"]) for a in attempts
    ]
    assert outcomes == [(1, "retry"), (2, "completed")]
    for attempt in attempts:
        assert (attempt.trace_id, attempt.parent_span_id) == (trace_id, submit_span_id)
    (retry,) = _children(spans, attempts[0], "retry_job")
    assert retry.attributes["itl.job.next_attempt"] == 2
    assert _children(spans, attempts[0], "publish_result") == []
    assert len(_children(spans, attempts[1], "publish_result")) == 1


async def test_without_a_tracer_provider_no_header_is_added(producer: JobQueue) -> None:
    assert not tracing.enabled()
    assert tracing.inject({}) == {}
    job_id = await producer.submit_job("ITL.Demo", "Job", "create", demo_request("untraced"))
    assert job_id
