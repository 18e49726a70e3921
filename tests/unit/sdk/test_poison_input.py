"""What a worker refuses before running anything: each poison message gets a clear reason.

Every refusal is an UndecodableJobError, which the consumer turns into a dead letter carrying
the text; anything else escaping the decoder would leave the delivery unsettled and its
concurrency slot lost.
"""

from __future__ import annotations

import json

import pytest

from itl_controlplane_sdk.errors import UndecodableJobError
from itl_controlplane_sdk.models import ResourceRequest
from itl_controlplane_sdk.workers.envelope import JobEnvelope, decode_delivery

JSON = "application/json"


def good_body() -> bytes:
    request = ResourceRequest(
        subscription_id="sub-1",
        resource_group="rg-1",
        provider_namespace="ITL.Core",
        resource_type="ResourceGroup",
        resource_name="rg-1",
        location="westeurope",
    )
    envelope = JobEnvelope(
        job_id="job-1",
        provider_namespace="ITL.Core",
        resource_type="ResourceGroup",
        operation="create",
        request=request,
    )
    return envelope.to_json()


def test_a_well_formed_job_is_decoded() -> None:
    for content_type in (JSON, "application/json; charset=utf-8", "Application/JSON"):
        assert decode_delivery(good_body(), content_type=content_type).job_id == "job-1"


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "reason"),
    [
        (b"[" * 5000 + b"]" * 5000, JSON, None, "nests too deeply"),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, JSON, None, "nests too deeply"),
        (b" " * (1024 * 1024 + 1), JSON, None, "exceeds MAX_JOB_BYTES=1048576"),
        (good_body(), "text/plain", None, "content type 'text/plain' is not application/json"),
        (good_body(), None, None, "no content type"),
        (good_body(), "", None, "no content type"),
        (good_body(), "application/json; charset=latin-1", None, "is not application/json"),
        (good_body(), JSON, "gzip", "unsupported content encoding 'gzip'"),
        (good_body().decode().encode("utf-16"), JSON, None, "not UTF-8"),
        (b"\xc3\x28", JSON, None, "not UTF-8"),
        (b"\xef\xbb\xbf" + good_body(), JSON, None, "not JSON"),
        (b"", JSON, None, "not JSON"),
        (b"null", JSON, None, "not a JSON object"),
        (b'"job"', JSON, None, "not a JSON object"),
        (b'{"version": 2}', JSON, None, "unsupported job envelope version 2"),
        (b'{"version": "1"}', JSON, None, "unsupported job envelope version '1'"),
        (b'{"version": [' + b"1," * 1000 + b"1]}", JSON, None, "unsupported job envelope version"),
        (b'{"job_id": 7}', JSON, None, "invalid job envelope"),
        (
            json.dumps({**json.loads(good_body()), "priority": "high"}).encode(),
            JSON,
            None,
            "priority",
        ),
        (
            json.dumps({**json.loads(good_body()), "request": []}).encode(),
            JSON,
            None,
            "request",
        ),
    ],
    ids=[
        "deep-array",
        "deep-object",
        "huge-body",
        "text-plain",
        "no-content-type",
        "empty-content-type",
        "latin-1-charset",
        "gzip-encoding",
        "utf-16",
        "invalid-utf-8",
        "utf-8-bom",
        "empty-body",
        "json-null",
        "json-string",
        "unknown-version",
        "string-version",
        "long-version",
        "wrong-id-type",
        "wrong-priority-type",
        "wrong-request-type",
    ],
)
def test_poison_messages_are_refused_with_a_reason(
    body: bytes, content_type: str | None, encoding: str | None, reason: str
) -> None:
    with pytest.raises(UndecodableJobError) as refused:
        decode_delivery(body, content_type=content_type, content_encoding=encoding)
    assert reason in str(refused.value)
    assert len(str(refused.value)) < 2000


def test_the_size_limit_is_a_setting() -> None:
    with pytest.raises(UndecodableJobError, match="exceeds MAX_JOB_BYTES=100"):
        decode_delivery(good_body(), content_type=JSON, max_bytes=100)
